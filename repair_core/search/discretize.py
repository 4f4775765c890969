"""The DARTS discretisation rule: continuous alphas -> a discrete `Genotype`.

Per intermediate node, keep the two incoming edges whose strongest non-`none` op has the
largest softmax weight, each with that op. `none` is never chosen. With PC-DARTS's edge
normalisation an edge's strength is its edge weight times that op weight (the op choice
is unchanged). An optional cap on skip connections in the normal cell (P-DARTS uses 2)
guards against the collapse to parameter-free cells.
"""

from __future__ import annotations

import torch

from repair_core.errors import RepairInputError
from repair_core.search.genotype import Edge, Genotype
from repair_core.search.ops import PRIMITIVES
from repair_core.search.partial import edge_softmax

_NONE = PRIMITIVES.index("none")
_SKIP = PRIMITIVES.index("skip_connect")


def num_edges(steps: int) -> int:
    """Edges of a cell with `steps` intermediate nodes (node i has i + 2 inputs)."""
    return sum(2 + i for i in range(steps))


def _best_op(row: list[float]) -> int:
    # First maximum wins on ties, like the reference loop.
    return max((k for k in range(len(row)) if k != _NONE), key=lambda k: (row[k], -k))


def _parse_rows(
    weights: list[list[float]], steps: int, edge_w: list[float] | None
) -> list[tuple[int, int]]:
    """(row, op) of every kept edge, two per node in order."""
    kept: list[tuple[int, int]] = []
    start = 0
    for i in range(steps):
        rows = range(start, start + i + 2)

        def strength(r: int) -> float:
            scale = 1.0 if edge_w is None else edge_w[r]
            return scale * weights[r][_best_op(weights[r])]

        # Stable sort: among equally strong edges the lower input index wins.
        kept.extend((r, _best_op(weights[r])) for r in sorted(rows, key=lambda r: -strength(r))[:2])
        start += i + 2
    return kept


def _parse(
    weights: list[list[float]],
    steps: int,
    edge_w: list[float] | None = None,
    max_skip: int | None = None,
) -> tuple[Edge, ...]:
    starts = [sum(2 + n for n in range(i)) for i in range(steps)]
    weights = [list(row) for row in weights]
    kept = _parse_rows(weights, steps, edge_w)
    while max_skip is not None and sum(op == _SKIP for _, op in kept) > max_skip:
        # Demote the weakest chosen skip, then derive again: its edge may pick another op
        # or give way to another edge.
        row = min((r for r, op in kept if op == _SKIP), key=lambda r: (weights[r][_SKIP], -r))
        weights[row][_SKIP] = -1.0  # below every softmax weight: never chosen again
        kept = _parse_rows(weights, steps, edge_w)
    node_of = [i for i in range(steps) for _ in range(i + 2)]
    return tuple((PRIMITIVES[op], r - starts[node_of[r]]) for r, op in kept)


def discretize_weights(
    w_normal: list[list[float]],
    w_reduce: list[list[float]],
    steps: int,
    multiplier: int,
    *,
    edge_normal: list[float] | None = None,
    edge_reduce: list[float] | None = None,
    max_skip_normal: int | None = None,
) -> Genotype:
    """Genotype of op weights (softmax space, rows: edges) and optional edge weights."""
    normal = _parse(w_normal, steps, edge_normal, max_skip_normal)
    reduce = _parse(w_reduce, steps, edge_reduce)
    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return Genotype(normal=normal, normal_concat=concat, reduce=reduce, reduce_concat=concat)


def _checked(name: str, t: torch.Tensor, shape: tuple[int, ...], steps: int) -> torch.Tensor:
    if tuple(t.shape) != shape:
        raise RepairInputError(f"{name} has shape {tuple(t.shape)}; {steps} steps need {shape}")
    if not bool(torch.isfinite(t).all()):
        raise RepairInputError(f"{name} holds NaN or Inf")
    # float64 so ties are judged like the reference.
    return t.detach().double().cpu()


def discretize(
    alphas_normal: torch.Tensor,
    alphas_reduce: torch.Tensor,
    steps: int = 4,
    multiplier: int = 4,
    *,
    betas_normal: torch.Tensor | None = None,
    betas_reduce: torch.Tensor | None = None,
    max_skip_normal: int | None = None,
) -> Genotype:
    """Genotype of the given architecture parameters (rows: edges, columns: PRIMITIVES)."""
    if not 1 <= multiplier <= steps:
        raise RepairInputError(f"multiplier must be in 1..{steps}, got {multiplier}")
    if max_skip_normal is not None and max_skip_normal < 0:
        raise RepairInputError(f"max_skip_normal must be >= 0 or None, got {max_skip_normal}")
    shape = (num_edges(steps), len(PRIMITIVES))
    w = [
        torch.softmax(_checked(name, a, shape, steps), dim=-1).tolist()
        for name, a in (("alphas_normal", alphas_normal), ("alphas_reduce", alphas_reduce))
    ]
    edges: list[list[float] | None] = []
    for name, betas in (("betas_normal", betas_normal), ("betas_reduce", betas_reduce)):
        edges.append(
            None
            if betas is None
            else edge_softmax(_checked(name, betas, shape[:1], steps), steps).tolist()
        )
    return discretize_weights(
        w[0], w[1], steps, multiplier,
        edge_normal=edges[0], edge_reduce=edges[1], max_skip_normal=max_skip_normal,
    )  # fmt: skip
