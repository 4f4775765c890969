"""PC-DARTS: partial channel connections, the channel shuffle and edge normalisation."""

from __future__ import annotations

import itertools

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.search.discretize import discretize
from repair_core.search.ops import PRIMITIVES
from repair_core.search.partial import PartialMixedOp, channel_shuffle, edge_softmax
from repair_core.search.supernet import MixedOp, SearchConfig, SuperNet

SMALL = SearchConfig(init_channels=4, layers=3, steps=2, multiplier=2, num_classes=3)


def test_channel_shuffle_interleaves_the_groups() -> None:
    x = torch.arange(8.0).view(1, 8, 1, 1)
    out = channel_shuffle(x, 4).flatten().tolist()
    assert out == [0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]


@pytest.mark.parametrize(("stride", "size", "out_size"), [(1, 8, 8), (2, 8, 4), (2, 7, 4)])
def test_partial_mixed_op_keeps_width_and_matches_the_strided_ops(
    stride: int, size: int, out_size: int
) -> None:
    op = PartialMixedOp(MixedOp(2, stride), stride, 4).eval()
    x = torch.randn(2, 8, size, size, generator=torch.Generator().manual_seed(0))
    weights = torch.softmax(torch.zeros(len(PRIMITIVES)), dim=0)
    assert op(x, weights).shape == (2, 8, out_size, out_size)


def test_bypassed_channels_come_through_unchanged_at_their_shuffled_places() -> None:
    op = PartialMixedOp(MixedOp(2, 1), 1, 4).eval()
    x = torch.randn(1, 8, 5, 5, generator=torch.Generator().manual_seed(1))
    out = op(x, torch.softmax(torch.zeros(len(PRIMITIVES)), dim=0))
    # Channels 2..7 bypass the ops; after the shuffle channel c sits at (c % 2) * 4 + c // 2.
    for c in range(2, 8):
        assert torch.equal(out[0, (c % 2) * 4 + c // 2], x[0, c])


def test_a_partial_supernet_has_fewer_weights_and_refuses_indivisible_widths() -> None:
    full = SuperNet(SMALL, generator=torch.Generator().manual_seed(0))
    pc = SuperNet(
        SearchConfig(init_channels=4, layers=3, steps=2, multiplier=2, num_classes=3,
                     partial_channels=2),
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    count = lambda m: sum(p.numel() for p in m.weight_parameters())  # noqa: E731
    assert count(pc) < count(full)
    assert pc(torch.rand(2, 3, 8, 8)).shape == (2, 3)
    with pytest.raises(RepairInputError, match="init_channels 6 must be a multiple of"):
        SearchConfig(init_channels=6, partial_channels=4)


def test_edge_softmax_sums_to_one_per_node() -> None:
    w = edge_softmax(torch.randn(14, generator=torch.Generator().manual_seed(2)), 4)
    starts = [0, 2, 5, 9, 14]
    for a, b in itertools.pairwise(starts):
        assert float(w[a:b].sum()) == pytest.approx(1.0)


def test_betas_are_architecture_parameters_drawn_after_the_darts_alphas() -> None:
    cfg = SearchConfig(init_channels=4, layers=3, steps=2, multiplier=2, num_classes=3,
                       edge_normalization=True)  # fmt: skip
    en = SuperNet(cfg, generator=torch.Generator().manual_seed(0))
    darts = SuperNet(SMALL, generator=torch.Generator().manual_seed(0))
    assert torch.equal(en.alphas_normal, darts.alphas_normal)
    assert len(en.arch_parameters()) == 4
    ids = {id(p) for p in en.weight_parameters()}
    assert all(id(p) not in ids for p in en.arch_parameters())
    assert en(torch.rand(2, 3, 8, 8)).shape == (2, 3)


def test_edge_normalization_changes_the_discretized_edges_in_a_constructed_case() -> None:
    # One node (steps 1, 2 edges) is too few to choose; use 2 nodes: node 1 has 3 inputs.
    alphas = torch.zeros(5, len(PRIMITIVES))
    conv = PRIMITIVES.index("sep_conv_3x3")
    alphas[:, conv] = 1.0
    alphas[2, conv], alphas[3, conv], alphas[4, conv] = 3.0, 3.0, 2.0  # alphas favour 0, 1
    plain = discretize(alphas, alphas, 2, 2)
    assert sorted(j for _, j in plain.normal[2:]) == [0, 1]
    betas = torch.tensor([0.0, 0.0, 0.0, 0.0, 5.0])  # node 1's edge from state 2
    normed = discretize(alphas, alphas, 2, 2, betas_normal=betas, betas_reduce=betas)
    assert sorted(j for _, j in normed.normal[2:]) == [0, 2]
    assert normed.normal[:2] == plain.normal[:2]
