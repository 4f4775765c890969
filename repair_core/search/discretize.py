"""The DARTS discretisation rule: continuous alphas -> a discrete `Genotype`.

Per intermediate node, keep the two incoming edges whose strongest non-`none` op has the
largest softmax weight, each with that op. `none` is never chosen.
"""

from __future__ import annotations

import torch

from repair_core.errors import RepairInputError
from repair_core.search.genotype import Edge, Genotype
from repair_core.search.ops import PRIMITIVES

_NONE = PRIMITIVES.index("none")


def num_edges(steps: int) -> int:
    """Edges of a cell with `steps` intermediate nodes (node i has i + 2 inputs)."""
    return sum(2 + i for i in range(steps))


def _parse(weights: list[list[float]], steps: int) -> tuple[Edge, ...]:
    def best_op(row: list[float]) -> int:
        # First maximum wins on ties, like the reference loop.
        return max((k for k in range(len(row)) if k != _NONE), key=lambda k: (row[k], -k))

    gene: list[Edge] = []
    start = 0
    for i in range(steps):
        rows = weights[start : start + i + 2]
        # Stable sort: among equally strong edges the lower input index wins.
        edges = sorted(range(i + 2), key=lambda j: -rows[j][best_op(rows[j])])[:2]
        gene.extend((PRIMITIVES[best_op(rows[j])], j) for j in edges)
        start += i + 2
    return tuple(gene)


def discretize(
    alphas_normal: torch.Tensor, alphas_reduce: torch.Tensor, steps: int = 4, multiplier: int = 4
) -> Genotype:
    """Genotype of the given architecture parameters (rows: edges, columns: PRIMITIVES)."""
    if not 1 <= multiplier <= steps:
        raise RepairInputError(f"multiplier must be in 1..{steps}, got {multiplier}")
    parsed = []
    for name, alphas in (("alphas_normal", alphas_normal), ("alphas_reduce", alphas_reduce)):
        expected = (num_edges(steps), len(PRIMITIVES))
        if tuple(alphas.shape) != expected:
            raise RepairInputError(
                f"{name} has shape {tuple(alphas.shape)}; {steps} steps need {expected}"
            )
        if not bool(torch.isfinite(alphas).all()):
            raise RepairInputError(f"{name} holds NaN or Inf")
        # One host transfer per cell type; float64 so ties are judged like the reference.
        weights = torch.softmax(alphas.detach().double(), dim=-1).cpu().tolist()
        parsed.append(_parse(weights, steps))
    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return Genotype(normal=parsed[0], normal_concat=concat, reduce=parsed[1], reduce_concat=concat)
