"""The search's settings (`SearchSettings`), a frozen dataclass with units in comments.

Torch-free, like every settings dataclass a profile is made of, so the API can check a
job's overrides against them when the job is created (`repair_core.profiles.build_plan`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from repair_core.errors import RepairInputError
from repair_core.search.early_stop import EarlyStopRule


@dataclass(frozen=True)
class SearchSettings:
    epochs: int = 20  # the paper's search length (DARTS itself: 50)
    batch_size: int = 64  # images per train batch and per val batch
    lr: float = 0.025  # weight SGD learning rate at epoch 0, cosine-annealed per epoch ...
    lr_min: float = 0.001  # ... down to this
    momentum: float = 0.9
    weight_decay: float = 3e-4  # weight L2
    grad_clip: float = 5.0  # max global L2 norm of the weight gradient
    arch_lr: float = 3e-4  # alpha Adam learning rate
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3  # alpha L2
    order: Literal["first", "second"] = "second"  # second: unrolled (DARTS V2)
    augment: bool = True  # random crop (padding image_size // 8) + flip, as DARTS
    steps_per_epoch: int | None = None  # None: len(train) // batch_size
    report_every: int = 50  # steps between progress reports; each is one host sync
    seed: int = 0  # initial weights, alphas and every batch draw
    bf16: bool = False  # bf16 autocast (CUDA); off until shown not to hurt the search
    channels_last: bool = False
    compile: bool = False  # torch.compile (inductor) of the supernet forward; see train.fastpath
    fused_optimizer: bool = False  # fused SGD kernel for the weights (CUDA only)
    warmup_epochs: int = 0  # weights-only epochs before alpha steps start (PC-DARTS: 15)
    drop_path_prob: float = 0.0  # max p, linear over epochs, weight steps only (R-DARTS)
    hessian_every: int = 0  # 0: off; else eigenvalue at epochs e % every == 0 and the last
    power_iters: int = 20  # Hessian-vector products per eigenvalue, at most
    early_stop: bool = False  # DARTS-ES; needs hessian_every >= 1
    es_window: int = 5  # local average window, in eigenvalues
    es_delta: int = 4  # compare with the average this many eigenvalues earlier
    es_factor: float = 1.3  # stop when the ratio exceeds this
    es_start_epoch: int = 10  # 0-based; never return an architecture from before it
    max_skip_normal: int | None = None  # collapse guard: cap on normal-cell skips (P-DARTS: 2)
    projection: bool = False  # DARTS-PT: perturbation-based selection after the epochs
    proj_interval: int = 5  # fine-tuning epochs between two decision points (reference: 5)
    proj_lr: float = 0.0025  # fine-tuning weight lr, cosine to lr_min (reference: lr / 10)
    proj_steps_per_epoch: int | None = None  # steps of a fine-tuning epoch; None: as searching
    proj_eval_batches: int | None = None  # val batches per removal score; None: all of val

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "report_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RepairInputError(f"SearchSettings.{name} must be a positive integer")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise RepairInputError("SearchSettings.steps_per_epoch must be positive or None")
        if self.order not in ("first", "second"):
            raise RepairInputError(f"SearchSettings.order must be first or second: {self.order!r}")
        if not 0 < self.lr_min <= self.lr or self.grad_clip <= 0 or self.arch_lr <= 0:
            raise RepairInputError(
                "SearchSettings: need 0 < lr_min <= lr, grad_clip > 0, arch_lr > 0"
            )
        for name in ("warmup_epochs", "hessian_every", "es_start_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RepairInputError(f"SearchSettings.{name} must be a non-negative integer")
        for name in ("power_iters", "es_window", "es_delta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RepairInputError(f"SearchSettings.{name} must be a positive integer")
        if not 0.0 <= self.drop_path_prob < 1.0:
            raise RepairInputError(
                f"SearchSettings.drop_path_prob must be in [0, 1), got {self.drop_path_prob}"
            )
        if self.es_factor <= 0:
            raise RepairInputError("SearchSettings.es_factor must be positive")
        if self.early_stop and self.hessian_every < 1:
            raise RepairInputError(
                "SearchSettings.early_stop needs eigenvalues: set hessian_every >= 1"
            )
        self._check_projection()
        if self.max_skip_normal is not None and (
            isinstance(self.max_skip_normal, bool) or self.max_skip_normal < 0
        ):
            raise RepairInputError("SearchSettings.max_skip_normal must be >= 0 or None")

    def _check_projection(self) -> None:
        if (
            isinstance(self.proj_interval, bool)
            or not isinstance(self.proj_interval, int)
            or (self.proj_interval < 0)
        ):
            raise RepairInputError("SearchSettings.proj_interval must be a non-negative integer")
        for name in ("proj_steps_per_epoch", "proj_eval_batches"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 1):
                raise RepairInputError(f"SearchSettings.{name} must be positive or None")
        if not self.proj_lr > 0:
            raise RepairInputError("SearchSettings.proj_lr must be positive")
        if self.projection and self.early_stop:
            raise RepairInputError(
                "SearchSettings: projection (DARTS-PT) and early_stop (DARTS-ES) exclude "
                "each other: choose one way to end the search"
            )

    @property
    def early_stop_rule(self) -> EarlyStopRule:
        return EarlyStopRule(
            self.es_window, self.es_delta, self.es_factor, self.es_start_epoch, self.hessian_every
        )
