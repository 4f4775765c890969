"""The DARTS discretisation rule on hand-made alphas."""

from __future__ import annotations

import pytest
import torch

from repair_core.errors import RepairInputError
from repair_core.search.discretize import discretize, num_edges
from repair_core.search.ops import PRIMITIVES

OP = {name: k for k, name in enumerate(PRIMITIVES)}


def _alphas(choices: dict[int, tuple[str, float]], steps: int = 4) -> torch.Tensor:
    """Zeros except alphas[edge, op] = value for each chosen edge."""
    alphas = torch.zeros(num_edges(steps), len(PRIMITIVES))
    for edge, (op, value) in choices.items():
        alphas[edge, OP[op]] = value
    return alphas


def test_hand_made_alphas_yield_the_expected_genotype() -> None:
    # Edges per node: node0: 0-1, node1: 2-4, node2: 5-8, node3: 9-13 (inputs 0.. in order).
    normal = _alphas(
        {
            0: ("sep_conv_3x3", 3.0), 1: ("skip_connect", 2.0),
            3: ("dil_conv_5x5", 4.0), 4: ("max_pool_3x3", 1.0),  # node1 drops input 0
            5: ("avg_pool_3x3", 2.0), 8: ("sep_conv_5x5", 3.0),
            12: ("dil_conv_3x3", 5.0), 13: ("sep_conv_3x3", 4.0),
        }
    )  # fmt: skip
    reduce = _alphas({0: ("max_pool_3x3", 1.0), 1: ("max_pool_3x3", 1.0)})
    g = discretize(normal, reduce)
    assert g.normal == (
        ("sep_conv_3x3", 0), ("skip_connect", 1),
        ("dil_conv_5x5", 1), ("max_pool_3x3", 2),
        ("sep_conv_5x5", 3), ("avg_pool_3x3", 0),
        ("dil_conv_3x3", 3), ("sep_conv_3x3", 4),
    )  # fmt: skip
    assert g.normal_concat == (2, 3, 4, 5) and g.reduce_concat == (2, 3, 4, 5)
    assert g.reduce[:2] == (("max_pool_3x3", 0), ("max_pool_3x3", 1))


def test_none_is_never_chosen_even_when_it_dominates() -> None:
    alphas = torch.zeros(num_edges(4), len(PRIMITIVES))
    alphas[:, OP["none"]] = 10.0
    alphas[:, OP["sep_conv_3x3"]] = 1.0
    g = discretize(alphas, alphas)
    assert all(op == "sep_conv_3x3" for op, _ in g.normal + g.reduce)


def test_edge_strength_ignores_the_none_weight() -> None:
    # Node 0: edge 0 has a huge `none` but a weak best op; edge 1 wins on its best op.
    alphas = torch.zeros(num_edges(1), len(PRIMITIVES))
    alphas[0, OP["none"]] = 20.0
    alphas[0, OP["skip_connect"]] = 0.5
    alphas[1, OP["avg_pool_3x3"]] = 1.0
    g = discretize(alphas, alphas, steps=1, multiplier=1)
    assert g.normal == (("avg_pool_3x3", 1), ("skip_connect", 0))


@pytest.mark.parametrize("seed", range(5))
def test_every_node_keeps_exactly_two_distinct_valid_inputs(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(num_edges(4), len(PRIMITIVES), generator=gen) for _ in range(2))
    g = discretize(a, b)
    for cell in (g.normal, g.reduce):
        assert len(cell) == 8
        for node in range(4):
            (op1, i1), (op2, i2) = cell[2 * node : 2 * node + 2]
            assert i1 != i2 and 0 <= i1 < node + 2 and 0 <= i2 < node + 2
            assert "none" not in (op1, op2)


def test_uniform_alphas_are_resolved_deterministically() -> None:
    alphas = torch.zeros(num_edges(4), len(PRIMITIVES))
    g = discretize(alphas, alphas)
    # Ties: first op after `none`, lowest input indices.
    assert g.normal == tuple(("max_pool_3x3", i) for node in range(4) for i in (0, 1))


def test_wrong_shapes_and_non_finite_alphas_are_rejected() -> None:
    good = torch.zeros(num_edges(4), len(PRIMITIVES))
    with pytest.raises(RepairInputError, match="shape"):
        discretize(torch.zeros(13, 8), good)
    bad = good.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(RepairInputError, match="NaN"):
        discretize(good, bad)
    with pytest.raises(RepairInputError, match="multiplier"):
        discretize(good, good, steps=4, multiplier=5)


def test_the_skip_cap_keeps_the_strongest_skips_and_none_changes_nothing() -> None:
    from repair_core.search.ops import PRIMITIVES

    skip, conv = PRIMITIVES.index("skip_connect"), PRIMITIVES.index("sep_conv_3x3")
    alphas = torch.zeros(14, len(PRIMITIVES))
    alphas[:, conv] = 0.5
    # Node 0 and node 1 each keep two skips (strength 4, 3, then 2, 1 on edges 2, 3).
    for row, value in ((0, 4.0), (1, 3.0), (2, 2.0), (3, 1.0)):
        alphas[row, skip] = value
    plain = discretize(alphas, alphas)
    assert sum(op == "skip_connect" for op, _ in plain.normal) == 4
    assert discretize(alphas, alphas, max_skip_normal=None) == plain
    capped = discretize(alphas, alphas, max_skip_normal=2)
    assert [e for e in capped.normal[:2]] == [("skip_connect", 0), ("skip_connect", 1)]
    assert sum(op == "skip_connect" for op, _ in capped.normal) == 2
    assert capped.reduce == plain.reduce  # the cap is for the normal cell
