"""One epoch of search steps with progress reports and cancellation checks.

Shared by the supernet's training and DARTS-PT's fine-tuning between its decisions.
"""

from __future__ import annotations

from typing import Protocol

import torch

from repair_core.progress import CancelToken, Progress, ProgressCallback
from repair_core.search.batches import EpochBatches
from repair_core.search.step import Order, search_step
from repair_core.search.supernet import SuperNet


class StepSettings(Protocol):
    # What an epoch reads of `searcher.SearchSettings` (the searcher imports this module).
    @property
    def order(self) -> Order: ...
    @property
    def grad_clip(self) -> float: ...
    @property
    def bf16(self) -> bool: ...
    @property
    def report_every(self) -> int: ...


def run_epoch(
    model: SuperNet,
    weight_opt: torch.optim.SGD,
    alpha_opt: torch.optim.Optimizer,
    batches: EpochBatches,
    settings: StepSettings,
    *,
    first_step: int,
    steps: int,
    total: int,
    batch_size: int,
    on_progress: ProgressCallback,
    cancel: CancelToken | None,
    extra: dict[str, float],
    arch_step: bool,
) -> tuple[float, float | None, float]:
    """One epoch of search steps; returns mean (loss, val_loss or None in warm-up, acc)."""
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
            arch_step=arch_step,
        )  # fmt: skip
        sums = torch.stack(
            [result.train_loss, result.val_loss, result.train_correct / batch_size]
        ).double()
        epoch_sums += sums
        window_sums += sums
        window_steps += 1
        if window_steps == settings.report_every or step == steps - 1:
            loss, val_loss, acc = (window_sums / window_steps).tolist()
            metrics = {"loss": loss, "train_acc": acc, **extra}
            if arch_step:
                metrics["val_loss"] = val_loss
            on_progress(Progress("searching", first_step + step + 1, total, metrics))
            window_sums.zero_()
            window_steps = 0
    loss, val_loss, acc = (epoch_sums / steps).tolist()
    return loss, val_loss if arch_step else None, acc
