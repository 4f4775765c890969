"""One bilevel search step: a weight step on a "train" batch, then an alpha step on a
"val" batch, in the order the paper describes (Section 4.1; DARTS's reference code takes
the alpha step first). No host syncs: results stay tensors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from repair_core.precision import autocast
from repair_core.search.architect import first_order_alpha_step, second_order_alpha_step
from repair_core.search.supernet import SuperNet

Order = Literal["first", "second"]


@dataclass(frozen=True)
class StepResult:
    train_loss: torch.Tensor  # 0-d, detached: cross entropy of the weight step's batch
    val_loss: torch.Tensor  # 0-d, detached: the alpha step's loss
    train_correct: torch.Tensor  # 0-d int: correct predictions in the weight step's batch


def weight_step(
    model: SuperNet,
    weight_optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    grad_clip: float,
    bf16: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step on the weights (alphas untouched); returns (loss, correct count)."""
    weights = model.weight_parameters()
    with autocast(x.device, bf16):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    # Gradients for the weights only: the alphas' gradient belongs to the alpha step.
    grads = torch.autograd.grad(loss, weights)
    for w, g in zip(weights, grads, strict=True):
        w.grad = g
    torch.nn.utils.clip_grad_norm_(weights, grad_clip)
    weight_optimizer.step()
    return loss.detach(), (logits.detach().argmax(dim=1) == y).sum()


def search_step(
    model: SuperNet,
    weight_optimizer: torch.optim.SGD,
    alpha_optimizer: torch.optim.Optimizer,
    train_batch: tuple[torch.Tensor, torch.Tensor],
    val_batch: tuple[torch.Tensor, torch.Tensor],
    *,
    order: Order,
    grad_clip: float,
    bf16: bool = False,
    arch_step: bool = True,
) -> StepResult:
    """Inputs are float images in [0, 1] and int64 labels, on the model's device.

    `arch_step=False` takes the weight step only (PC-DARTS's warm-up epochs); the val
    batch is then unused and `val_loss` is 0.
    """
    x_train, y_train = train_batch
    x_val, y_val = val_batch
    if order not in ("first", "second"):
        raise ValueError(f"order must be 'first' or 'second', got {order!r}")
    # Drop path (RobustDARTS's regularised variant) applies to the weight step alone: the
    # alpha step's finite differences would otherwise compare differently masked networks.
    drop = model.drop_path_prob
    train_loss, correct = weight_step(
        model, weight_optimizer, x_train, y_train, grad_clip=grad_clip, bf16=bf16
    )
    model.drop_path_prob = 0.0
    try:
        val_loss = _alpha_step(
            model, weight_optimizer, alpha_optimizer, x_train, y_train, x_val, y_val,
            order=order, bf16=bf16, arch_step=arch_step,
        )  # fmt: skip
    finally:
        model.drop_path_prob = drop
    return StepResult(train_loss=train_loss, val_loss=val_loss, train_correct=correct)


def _alpha_step(
    model: SuperNet,
    weight_optimizer: torch.optim.SGD,
    alpha_optimizer: torch.optim.Optimizer,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    order: Order,
    bf16: bool,
    arch_step: bool,
) -> torch.Tensor:
    if not arch_step:
        return torch.zeros((), device=x_val.device)
    if order == "second":
        return second_order_alpha_step(
            model, alpha_optimizer, weight_optimizer, x_train, y_train, x_val, y_val, bf16=bf16
        )
    return first_order_alpha_step(model, alpha_optimizer, x_val, y_val, bf16=bf16)
