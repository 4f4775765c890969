"""DARTS bilevel architecture search: weights on "train", alphas on "val", alternating.

Each step draws one train batch and one val batch (seeded), takes one weight step and
one alpha step, and checks for cancellation. State is saved at every epoch end when a
`state_path` is given, and a later call with the same path resumes from it exactly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from repair_core.datasets.ops import data_fingerprint
from repair_core.datasets.types import ImageDataset
from repair_core.device import resolve_device
from repair_core.errors import RepairInputError
from repair_core.precision import to_channels_last
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from repair_core.rng import seeded_generator
from repair_core.search.batches import EpochBatches
from repair_core.search.genotype import Genotype
from repair_core.search.search_state import load_search_state, save_search_state
from repair_core.search.step import search_step
from repair_core.search.supernet import SearchConfig, SuperNet
from repair_core.train.schedule import cosine_lr


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


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    lr: float  # weight learning rate used in this epoch
    loss: float  # mean train cross entropy of the weight steps
    val_loss: float  # mean val cross entropy of the alpha steps
    train_acc: float  # fraction of train batch images classified correctly
    genotype: Genotype  # discretized at the end of the epoch

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "genotype": self.genotype.to_json()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EpochRecord:
        return cls(**{**data, "genotype": Genotype.from_json(data["genotype"])})


@dataclass(frozen=True)
class SearchResult:
    genotype: Genotype
    alphas_normal: torch.Tensor  # (edges, primitives), CPU, detached
    alphas_reduce: torch.Tensor
    history: tuple[EpochRecord, ...]


def _check_data(train: ImageDataset, val: ImageDataset, config: SearchConfig) -> None:
    for name, data in (("train", train), ("val", val)):
        if len(data) == 0:
            raise RepairInputError(f"search {name} set is empty")
        if data.image_shape[0] != config.in_channels:
            raise RepairInputError(
                f"search {name} images have {data.image_shape[0]} channels; "
                f"the supernet expects {config.in_channels}"
            )
        if len(data.class_names) > config.num_classes:
            raise RepairInputError(
                f"search {name} set has {len(data.class_names)} classes; "
                f"the supernet has {config.num_classes} outputs"
            )
    if train.image_shape != val.image_shape:
        raise RepairInputError(
            f"train images are {train.image_shape} but val images are {val.image_shape}"
        )


def _fingerprint(
    train: ImageDataset, val: ImageDataset, config: SearchConfig, settings: SearchSettings
) -> str:
    # What a resumed run must share with the one that saved the state. `epochs` may grow:
    # a finished search continued for more epochs refines W and alpha further (paper §4.7).
    relevant = {k: v for k, v in asdict(settings).items() if k not in ("report_every", "epochs")}
    data = {"train": data_fingerprint(train), "val": data_fingerprint(val)}
    return json.dumps({"config": config.to_dict(), "settings": relevant, "data": data})


def _run_epoch(
    model: SuperNet,
    weight_opt: torch.optim.SGD,
    alpha_opt: torch.optim.Optimizer,
    batches: EpochBatches,
    settings: SearchSettings,
    *,
    first_step: int,
    steps: int,
    total: int,
    batch_size: int,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
    extra: dict[str, float],
) -> tuple[float, float, float]:
    """One epoch of search steps; returns mean (loss, val_loss, train_acc)."""
    model.train()
    # Running sums stay on the device: read only when reporting (each read is a host sync).
    device = model.alphas_normal.device
    epoch_sums = torch.zeros(3, device=device, dtype=torch.float64)
    window_sums = torch.zeros(3, device=device, dtype=torch.float64)
    window_steps = 0
    for step in range(steps):
        if cancel is not None:
            cancel.check()
        result = search_step(
            model, weight_opt, alpha_opt, batches.train(step), batches.val(step),
            order=settings.order, grad_clip=settings.grad_clip, bf16=settings.bf16,
        )  # fmt: skip
        sums = torch.stack(
            [result.train_loss, result.val_loss, result.train_correct / batch_size]
        ).double()
        epoch_sums += sums
        window_sums += sums
        window_steps += 1
        if window_steps == settings.report_every or step == steps - 1:
            loss, val_loss, acc = (window_sums / window_steps).tolist()
            metrics = {"loss": loss, "val_loss": val_loss, "train_acc": acc, **extra}
            on_progress(Progress("searching", first_step + step + 1, total, metrics))
            window_sums.zero_()
            window_steps = 0
    loss, val_loss, acc = (epoch_sums / steps).tolist()
    return loss, val_loss, acc


def search(
    train: ImageDataset,
    val: ImageDataset,
    config: SearchConfig,
    settings: SearchSettings,
    *,
    device: torch.device | str,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
    state_path: Path | None = None,
) -> SearchResult:
    """Run (or resume) the search; raises `RepairCancelled` when `cancel` fires."""
    dev = resolve_device(device) if isinstance(device, str) else device
    _check_data(train, val, config)
    generator = seeded_generator(settings.seed)
    model = SuperNet(config, generator=generator).to(dev)
    if settings.channels_last:
        to_channels_last(model)
    weight_opt = torch.optim.SGD(
        model.weight_parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    alpha_opt = torch.optim.Adam(
        model.arch_parameters(),
        lr=settings.arch_lr,
        betas=settings.arch_betas,
        weight_decay=settings.arch_weight_decay,
    )
    fingerprint = _fingerprint(train, val, config, settings)
    start, history = 0, list[dict[str, Any]]()
    if state_path is not None and state_path.exists():
        start, history = load_search_state(
            state_path,
            model=model,
            weight_optimizer=weight_opt,
            alpha_optimizer=alpha_opt,
            generator=generator,
            fingerprint=fingerprint,
        )

    train_bs, val_bs = min(settings.batch_size, len(train)), min(settings.batch_size, len(val))
    steps = settings.steps_per_epoch or max(1, len(train) // train_bs)
    total = settings.epochs * steps
    train_dev, val_dev = train.to(dev), val.to(dev)
    for epoch in range(start, settings.epochs):
        lr = cosine_lr(epoch, settings.epochs, settings.lr, settings.lr_min)
        for group in weight_opt.param_groups:
            group["lr"] = lr
        batches = EpochBatches(
            train_dev, val_dev, steps, train_bs, val_bs, settings.augment, generator,
            channels_last=settings.channels_last,
        )  # fmt: skip
        loss, val_loss, acc = _run_epoch(
            model, weight_opt, alpha_opt, batches, settings,
            first_step=epoch * steps, steps=steps, total=total, batch_size=train_bs,
            on_progress=on_progress, cancel=cancel, extra={"epoch": epoch + 1.0, "lr": lr},
        )  # fmt: skip
        record = EpochRecord(epoch + 1, lr, loss, val_loss, acc, model.genotype())
        history.append(record.to_dict())
        if state_path is not None:
            save_search_state(
                state_path,
                model=model,
                weight_optimizer=weight_opt,
                alpha_optimizer=alpha_opt,
                generator=generator,
                epoch=epoch + 1,
                history=history,
                fingerprint=fingerprint,
            )
    return SearchResult(
        genotype=model.genotype(),
        alphas_normal=model.alphas_normal.detach().cpu().clone(),
        alphas_reduce=model.alphas_reduce.detach().cpu().clone(),
        history=tuple(EpochRecord.from_dict(h) for h in history),
    )
