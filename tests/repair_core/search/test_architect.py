"""Architecture gradients: the unrolled second-order estimate against exact autograd, and
first/second-order search steps that learn on a fixed tiny batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from repair_core.search.architect import first_order_alpha_step, second_order_alpha_step
from repair_core.search.step import search_step, weight_step
from repair_core.search.supernet import SearchConfig, SuperNet

CFG = SearchConfig(init_channels=4, layers=3, steps=2, multiplier=2, num_classes=3)


def _setup(seed: int = 0, dtype: torch.dtype = torch.float32):
    gen = torch.Generator().manual_seed(seed)
    model = SuperNet(CFG, generator=gen).to(dtype)
    x = torch.rand(8, 3, 8, 8, generator=gen, dtype=dtype)
    y = torch.randint(0, 3, (8,), generator=gen)
    xv = torch.rand(8, 3, 8, 8, generator=gen, dtype=dtype)
    yv = torch.randint(0, 3, (8,), generator=gen)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.1, momentum=0.9, weight_decay=3e-4)
    return model, w_opt, (x, y), (xv, yv)


def _exact_hypergradient(model: SuperNet, w_opt: torch.optim.SGD, train, val) -> list[torch.Tensor]:
    """d/dalpha L_val(w - lr (momentum buf + dL_train/dw + wd w), alpha) by double backprop."""
    group = w_opt.param_groups[0]
    names, weights = zip(*model.named_weight_parameters(), strict=True)
    loss = F.cross_entropy(model(train[0]), train[1])
    dw = torch.autograd.grad(loss, weights, create_graph=True)
    unrolled = {}
    for n, w, g in zip(names, weights, dw, strict=True):
        buf = w_opt.state[w]["momentum_buffer"]
        unrolled[n] = w - group["lr"] * (group["momentum"] * buf + g + group["weight_decay"] * w)
    unrolled |= {n: b.clone() for n, b in model.named_buffers()}
    val_loss = F.cross_entropy(functional_call(model, unrolled, (val[0],)), val[1])
    return list(torch.autograd.grad(val_loss, model.arch_parameters()))


def test_second_order_gradient_matches_exact_double_backprop() -> None:
    model, w_opt, train, val = _setup(dtype=torch.float64)
    weight_step(model, w_opt, *train, grad_clip=5.0)  # so a momentum buffer takes part
    exact = _exact_hypergradient(model, w_opt, train, val)
    before = [w.detach().clone() for w in model.weight_parameters()]
    alphas_before = [a.detach().clone() for a in model.arch_parameters()]
    # lr 0 records the gradient without moving the alphas. A small finite-difference
    # radius in float64 isolates the formula from the approximation: at DARTS's r = 1e-2
    # this tiny ReLU/BN net is far from linear over the probe and the estimate drifts.
    probe = torch.optim.SGD(model.arch_parameters(), lr=0.0)
    second_order_alpha_step(model, probe, w_opt, *train, *val, r=1e-6)
    for a, e, a0 in zip(model.arch_parameters(), exact, alphas_before, strict=True):
        assert a.grad is not None
        torch.testing.assert_close(a.grad, e, rtol=1e-6, atol=1e-9)
        assert torch.equal(a.detach(), a0)
    # The finite-difference probes must leave the weights exactly as they were.
    for w, w0 in zip(model.weight_parameters(), before, strict=True):
        assert torch.equal(w.detach(), w0)


def test_second_order_differs_from_first_order() -> None:
    model, w_opt, train, val = _setup(dtype=torch.float64)
    probe = torch.optim.SGD(model.arch_parameters(), lr=0.0)
    first_order_alpha_step(model, probe, *val)
    first = [a.grad.clone() for a in model.arch_parameters()]  # type: ignore[union-attr]
    second_order_alpha_step(model, probe, w_opt, *train, *val)
    second = [a.grad for a in model.arch_parameters()]
    assert not all(torch.allclose(f, s) for f, s in zip(first, second, strict=True))


def test_first_order_gradient_is_the_plain_val_gradient() -> None:
    model, _, _, val = _setup(dtype=torch.float64)
    loss = F.cross_entropy(model(val[0]), val[1])
    expected = torch.autograd.grad(loss, model.arch_parameters())
    probe = torch.optim.SGD(model.arch_parameters(), lr=0.0)
    returned = first_order_alpha_step(model, probe, *val)
    assert torch.isclose(returned, loss.detach())
    for a, e in zip(model.arch_parameters(), expected, strict=True):
        torch.testing.assert_close(a.grad, e)


@pytest.mark.parametrize("order", ["first", "second"])
def test_search_steps_change_alphas_and_weights_and_lower_the_loss(order: str) -> None:
    model, w_opt, train, _ = _setup()
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=0.05, betas=(0.5, 0.999))
    alphas0 = [a.detach().clone() for a in model.arch_parameters()]
    weights0 = [w.detach().clone() for w in model.weight_parameters()]
    # The same batch as train and val: both levels then minimise one loss.
    losses = [
        search_step(model, w_opt, a_opt, train, train, order=order, grad_clip=5.0)  # type: ignore[arg-type]
        for _ in range(6)
    ]
    assert all(
        not torch.equal(a, a0) for a, a0 in zip(model.arch_parameters(), alphas0, strict=True)
    )
    changed = sum(
        not torch.equal(w, w0) for w, w0 in zip(model.weight_parameters(), weights0, strict=True)
    )
    assert changed == len(weights0)
    assert losses[-1].val_loss < losses[0].val_loss
    assert losses[-1].train_loss < losses[0].train_loss
    assert 0 <= int(losses[-1].train_correct) <= 8


def test_weight_step_leaves_alphas_alone_and_clips_gradients() -> None:
    model, _, train, _ = _setup()
    alphas0 = [a.detach().clone() for a in model.arch_parameters()]
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.1)
    weight_step(model, w_opt, *train, grad_clip=1e-3)
    norm = torch.linalg.vector_norm(torch.stack([w.grad.norm() for w in model.weight_parameters()]))  # type: ignore[union-attr]
    assert norm <= 1e-3 * 1.0001
    for a, a0 in zip(model.arch_parameters(), alphas0, strict=True):
        assert torch.equal(a.detach(), a0)
        assert a.grad is None
