"""The dominant eigenvalue of the validation loss Hessian w.r.t. the architecture.

RobustDARTS (Zela et al., ICLR 2020) tracks the largest eigenvalue of d2 L_val / d alpha2:
its growth precedes the collapse of DARTS to parameter-free cells. We find it by power
iteration on exact Hessian-vector products (double backward), never forming the Hessian.
The Hessian is indefinite, so power iteration first finds the eigenvalue of largest
magnitude; when that is negative, a second run on H - lambda_1 I finds the largest
algebraic one, which is what the reference's `max(eigvals(H))` reports. (The reference
adds the alpha weight decay, 1e-3 I, to H; we report the loss's own Hessian.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from repair_core.search.supernet import SuperNet

Vectors = list[torch.Tensor]


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum(((x * y).sum() for x, y in zip(a, b, strict=True)), torch.zeros(()))


def _normalized(v: Sequence[torch.Tensor]) -> Vectors:
    norm = torch.sqrt(_dot(v, v)).clamp_min(1e-30)
    return [x / norm for x in v]


def power_iteration(
    hvp: Callable[[Vectors], Vectors],
    shapes: Sequence[torch.Size],
    *,
    iters: int,
    tol: float = 1e-4,
    generator: torch.Generator,
    shift: float = 0.0,
) -> float:
    """Eigenvalue of largest magnitude of (H - shift I), by Rayleigh quotients.

    Stops after `iters` products or when the estimate changes by less than `tol` relative.
    """
    v = _normalized([torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes])
    estimate: float | None = None
    for _ in range(iters):
        hv = [h - shift * x for h, x in zip(hvp(v), v, strict=True)]
        new = float(_dot(v, hv))
        v = _normalized(hv)
        if estimate is not None and abs(new - estimate) <= tol * abs(new):
            return new
        estimate = new
    assert estimate is not None
    return estimate


def dominant_eigenvalue(
    model: SuperNet,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    iters: int,
    generator: torch.Generator,
    tol: float = 1e-4,
) -> float:
    """Largest eigenvalue of the Hessian of the cross entropy on (x, y) w.r.t. the arch.

    Runs in fp32 with drop path off and BN in training mode (as the alpha steps see the
    network); BN running statistics are restored afterwards, so tracking the eigenvalue
    leaves the search itself unchanged. `generator` (CPU) draws the start vector.
    """
    arch = model.arch_parameters()
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    drop, training = model.drop_path_prob, model.training
    model.drop_path_prob = 0.0
    model.train()
    try:
        loss = F.cross_entropy(model(x).float(), y)
        grads = torch.autograd.grad(loss, arch, create_graph=True, allow_unused=True)
        # An arch tensor no cell uses (every cell reduces at layers < 3) has a zero block.
        live = [(a, g) for a, g in zip(arch, grads, strict=True) if g is not None]
        device = x.device

        def hvp(v: Vectors) -> Vectors:
            out = torch.autograd.grad(
                [g for _, g in live],
                [a for a, _ in live],
                grad_outputs=[
                    t.to(device=device, dtype=a.dtype) for t, (a, _) in zip(v, live, strict=True)
                ],
                retain_graph=True,
                allow_unused=True,
            )
            return [
                torch.zeros(a.shape, dtype=torch.float64) if h is None else h.double().cpu()
                for h, (a, _) in zip(out, live, strict=True)
            ]

        if not live:
            return 0.0
        shapes = [a.shape for a, _ in live]
        first = power_iteration(hvp, shapes, iters=iters, tol=tol, generator=generator)
        if first >= 0:
            return first
        # The most negative eigenvalue dominated; H - first I has only eigenvalues >= 0.
        return first + power_iteration(
            hvp, shapes, iters=iters, tol=tol, generator=generator, shift=first
        )
    finally:
        model.drop_path_prob = drop
        model.train(training)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
