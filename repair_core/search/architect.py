"""Architecture (alpha) gradient steps: first order, and second order by unrolling.

Second order follows DARTS: with w' = w - lr * (momentum * buf + dL_train/dw + wd * w)
(the weight optimizer's next SGD step), the alpha gradient is
dL_val(w', a)/da - lr * d2L_train/(da dw) . dL_val(w', a)/dw',
the Hessian-vector product estimated by central finite differences at w +- R v,
R = r / |v|.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from repair_core.precision import autocast
from repair_core.search.supernet import SuperNet


def _loss(model: SuperNet, x: torch.Tensor, y: torch.Tensor, bf16: bool) -> torch.Tensor:
    # Only the forward runs under autocast; backward follows the forward's dtypes.
    with autocast(x.device, bf16):
        return F.cross_entropy(model(x), y)


def _grads(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    # An input no cell uses (e.g. alphas_normal when every cell reduces) gets zeros.
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for t, g in zip(inputs, grads, strict=True)]


def _alpha_grads(loss: torch.Tensor, model: SuperNet) -> list[torch.Tensor]:
    # Asking for the alphas alone skips every conv weight-gradient kernel.
    return _grads(loss, model.arch_parameters())


def first_order_alpha_step(
    model: SuperNet,
    alpha_optimizer: torch.optim.Optimizer,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    bf16: bool = False,
) -> torch.Tensor:
    """One alpha step on dL_val/da at the current weights; returns the (detached) val loss."""
    loss = _loss(model, x_val, y_val, bf16)
    grads = _alpha_grads(loss, model)
    for alpha, g in zip(model.arch_parameters(), grads, strict=True):
        alpha.grad = g
    alpha_optimizer.step()
    return loss.detach()


def second_order_alpha_step(
    model: SuperNet,
    alpha_optimizer: torch.optim.Optimizer,
    weight_optimizer: torch.optim.SGD,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    r: float = 1e-2,
    bf16: bool = False,
) -> torch.Tensor:
    """One unrolled alpha step; returns the (detached) val loss at the unrolled weights.

    Learning rate, momentum and weight decay of the virtual step are read from
    `weight_optimizer`'s first group, so they always match the real weight step.
    """
    names, weights = zip(*model.named_weight_parameters(), strict=True)
    group = weight_optimizer.param_groups[0]
    lr, momentum, wd = float(group["lr"]), float(group["momentum"]), float(group["weight_decay"])

    train_loss = _loss(model, x_train, y_train, bf16)
    dw = torch.autograd.grad(train_loss, weights)
    with torch.no_grad():
        unrolled = []
        for w, g in zip(weights, dw, strict=True):
            step = g + wd * w
            buf = weight_optimizer.state.get(w, {}).get("momentum_buffer")
            if buf is not None:
                step = step + momentum * buf
            unrolled.append((w - lr * step).requires_grad_())
    # Buffers are cloned so the virtual forward leaves the real BN statistics alone.
    overrides = {n: u for n, u in zip(names, unrolled, strict=True)}
    overrides |= {n: b.clone() for n, b in model.named_buffers()}
    with autocast(x_val.device, bf16):
        val_loss = F.cross_entropy(functional_call(model, overrides, (x_val,)), y_val)
    n_alpha = len(model.arch_parameters())
    grads = _grads(val_loss, [*model.arch_parameters(), *unrolled])
    dalpha, vector = grads[:n_alpha], grads[n_alpha:]

    hvp = _hessian_vector_product(model, weights, vector, x_train, y_train, r, bf16)
    for alpha, g, h in zip(model.arch_parameters(), dalpha, hvp, strict=True):
        alpha.grad = g - lr * h
    alpha_optimizer.step()
    return val_loss.detach()


def _hessian_vector_product(
    model: SuperNet,
    weights: tuple[torch.nn.Parameter, ...],
    vector: Sequence[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    r: float,
    bf16: bool,
) -> list[torch.Tensor]:
    """(d/da dL_train(w + R v) - d/da dL_train(w - R v)) / 2R."""
    # A norm of zero (e.g. a dead network) would divide by zero; the clamp keeps R finite.
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in vector]))
    radius = r / norm.clamp_min(1e-12)
    saved = [w.detach().clone() for w in weights]
    try:
        with torch.no_grad():
            for w, v in zip(weights, vector, strict=True):
                w.add_(radius * v)
        grads_p = _alpha_grads(_loss(model, x, y, bf16), model)
        with torch.no_grad():
            for w, v in zip(weights, vector, strict=True):
                w.sub_(2 * radius * v)
        grads_n = _alpha_grads(_loss(model, x, y, bf16), model)
    finally:
        # Restore by copy, not by adding R v back: exact, and safe if a pass raised.
        with torch.no_grad():
            for w, s in zip(weights, saved, strict=True):
                w.copy_(s)
    return [(p - n) / (2 * radius) for p, n in zip(grads_p, grads_n, strict=True)]
