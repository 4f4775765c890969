"""Every registered op: output shape, gradients reach every parameter, nothing NaN."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.search.ops import OPS, PRIMITIVES, DropPath, FactorizedReduce, drop_path


def test_primitives_are_the_eight_darts_ops_in_reference_order() -> None:
    assert PRIMITIVES == (
        "none",
        "max_pool_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "sep_conv_5x5",
        "dil_conv_3x3",
        "dil_conv_5x5",
    )
    assert all(name in OPS for name in PRIMITIVES)


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_op_keeps_channels_scales_size_and_passes_gradients(
    name: str, stride: int, size: int
) -> None:
    torch.manual_seed(0)
    op = OPS[name](4, stride, True)
    x = torch.randn(3, 4, size, size, requires_grad=True)
    y = op(x)
    expected = -(-size // stride)  # ceil: every op pads like a "same" conv
    assert y.shape == (3, 4, expected, expected)
    assert torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    for pname, p in op.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert x.grad is not None and torch.isfinite(x.grad).all()
    if name == "none":
        assert not y.any()


def test_unknown_op_error_lists_the_valid_names() -> None:
    with pytest.raises(RepairInputError, match="sep_conv_3x3") as info:
        OPS["conv_9x9"]
    assert "conv_9x9" in str(info.value)
    assert "conv_9x9" not in OPS
    assert OPS.get("conv_9x9") is None


def test_factorized_reduce_handles_odd_sizes_and_matches_reference_on_even() -> None:
    torch.manual_seed(0)
    fr = FactorizedReduce(4, 6).eval()
    assert fr(torch.randn(2, 4, 7, 7)).shape == (2, 6, 4, 4)
    x = torch.randn(2, 4, 8, 8)
    r = torch.relu(x)
    reference = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))
    assert torch.equal(fr(x), reference)


def test_drop_path_is_identity_in_eval_or_at_zero() -> None:
    x = torch.randn(8, 2, 3, 3)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x


def test_drop_path_drops_whole_examples_and_rescales_survivors_reproducibly() -> None:
    x = torch.ones(64, 2, 3, 3)
    y1 = drop_path(x, 0.5, True, torch.Generator().manual_seed(1))
    y2 = drop_path(x, 0.5, True, torch.Generator().manual_seed(1))
    assert torch.equal(y1, y2)
    per_example = y1.flatten(1)
    kept = per_example[:, 0] > 0
    assert 0 < int(kept.sum()) < 64
    assert torch.all(per_example[kept] == 2.0)
    assert torch.all(per_example[~kept] == 0.0)


def test_drop_path_module_follows_training_mode() -> None:
    module = DropPath(0.9, torch.Generator().manual_seed(0))
    x = torch.ones(32, 1)
    assert not torch.equal(module(x), x)
    module.eval()
    assert torch.equal(module(x), x)
