"""The power-iteration eigenvalue against an explicit eigendecomposition of the Hessian."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from repair_core.search.hessian import dominant_eigenvalue, power_iteration
from repair_core.search.supernet import SearchConfig, SuperNet


def _problem(layers: int) -> tuple[SuperNet, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    cfg = SearchConfig(init_channels=4, layers=layers, steps=1, multiplier=1, num_classes=3)
    model = SuperNet(cfg, generator=g)
    # Spread the alphas so the Hessian is not near zero.
    with torch.no_grad():
        for a in model.arch_parameters():
            a.copy_(torch.randn(a.shape, generator=g))
    x = torch.rand(8, 3, 8, 8, generator=g)
    y = torch.randint(0, 3, (8,), generator=g)
    return model, x, y


def test_power_iteration_matches_the_largest_eigenvalue_of_the_explicit_hessian() -> None:
    model, x, y = _problem(layers=3)
    model.train()
    arch = model.arch_parameters()
    sizes = [a.numel() for a in arch]
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def loss_of(flat: torch.Tensor) -> torch.Tensor:
        parts = torch.split(flat, sizes)
        params = {"alphas_normal": parts[0].view_as(arch[0]),
                  "alphas_reduce": parts[1].view_as(arch[1])}  # fmt: skip
        # Fresh buffers every call: the explicit Hessian must see the same BN state.
        state = {**params, **{n: b.clone() for n, b in buffers.items()}}
        return F.cross_entropy(functional_call(model, state, (x,)), y)

    flat = torch.cat([a.detach().flatten() for a in arch])
    hessian = torch.autograd.functional.hessian(loss_of, flat)
    expected = float(torch.linalg.eigvalsh(hessian.double()).max())
    before = {n: b.clone() for n, b in model.named_buffers()}
    got = dominant_eigenvalue(
        model, x, y, iters=200, tol=1e-8, generator=torch.Generator().manual_seed(3)
    )
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-7)
    for name, b in model.named_buffers():
        assert torch.equal(b, before[name])  # BN statistics restored


def test_a_negative_dominant_eigenvalue_is_shifted_away() -> None:
    spectrum = torch.tensor([-5.0, 1.0, 2.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(0)).double())
    h = q @ torch.diag(spectrum) @ q.T

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
        return [h @ v[0]]

    gen = torch.Generator().manual_seed(1)
    first = power_iteration(hvp, [torch.Size([3])], iters=500, tol=1e-12, generator=gen)
    assert first == pytest.approx(-5.0, rel=1e-6)
    shifted = power_iteration(
        hvp, [torch.Size([3])], iters=500, tol=1e-12, generator=gen, shift=first
    )
    assert first + shifted == pytest.approx(2.0, rel=1e-6)


def test_unused_alphas_do_not_break_the_eigenvalue() -> None:
    model, x, y = _problem(layers=2)  # both cells reduce: alphas_normal unused
    value = dominant_eigenvalue(model, x, y, iters=5, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(torch.tensor(value))
