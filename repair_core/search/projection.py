"""DARTS-PT's decisions so far: which op each edge keeps, which two inputs each node keeps.

DARTS-PT (Wang et al., ICLR 2021) discretises a trained supernet one decision at a time.
A decided edge carries its chosen op alone, at full weight (the reference's "hard"
projection); an input edge a node gave up carries nothing. `Projection` holds those
decisions as plain data and turns them into the op weights a cell mixes with:
`keep * softmax(alpha) + fixed` (applied by `SuperNet.cell_weights`). For scoring a
candidate it can also zero one more op of an edge, or a whole edge (`without`), which is
how a removal is measured.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from repair_core.search.discretize import num_edges


def node_rows(node: int) -> range:
    """Edge rows (alpha rows) of intermediate node `node`: its `node + 2` inputs."""
    start = num_edges(node)
    return range(start, start + node + 2)


@dataclass(frozen=True)
class CellChoice:
    ops: tuple[int | None, ...]  # per edge row: the chosen primitive index; None: undecided
    inputs: tuple[tuple[int, int] | None, ...]  # per node: its two kept rows; None: undecided

    @classmethod
    def empty(cls, steps: int) -> CellChoice:
        return cls((None,) * num_edges(steps), (None,) * steps)

    def removed_rows(self) -> list[int]:
        return [
            row
            for node, kept in enumerate(self.inputs)
            if kept is not None
            for row in node_rows(node)
            if row not in kept
        ]


Cut = tuple[bool, int, int | None]  # (reduction cell, row, op index; None: the whole edge)


@dataclass(frozen=True)
class Projection:
    normal: CellChoice
    reduce: CellChoice
    cut: Cut | None = None  # scoring only: one more op (or edge) zeroed; never saved

    @classmethod
    def empty(cls, steps: int) -> Projection:
        return cls(CellChoice.empty(steps), CellChoice.empty(steps))

    def cell(self, reduction: bool) -> CellChoice:
        return self.reduce if reduction else self.normal

    def _with_cell(self, reduction: bool, cell: CellChoice) -> Projection:
        return replace(self, reduce=cell) if reduction else replace(self, normal=cell)

    def with_op(self, reduction: bool, row: int, op: int) -> Projection:
        ops = list(self.cell(reduction).ops)
        ops[row] = op
        return self._with_cell(reduction, replace(self.cell(reduction), ops=tuple(ops)))

    def with_inputs(self, reduction: bool, node: int, rows: tuple[int, int]) -> Projection:
        inputs = list(self.cell(reduction).inputs)
        inputs[node] = (min(rows), max(rows))
        return self._with_cell(reduction, replace(self.cell(reduction), inputs=tuple(inputs)))

    def without(self, reduction: bool, row: int, op: int | None = None) -> Projection:
        """This projection with op `op` of edge `row` (or, for None, the edge) zeroed."""
        return replace(self, cut=(reduction, row, op))

    def masks(self, reduction: bool, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(keep, fixed), shaped and placed like the (edges, primitives) weights `like`."""
        cell = self.cell(reduction)
        keep = torch.ones(like.shape, dtype=like.dtype)
        fixed = torch.zeros(like.shape, dtype=like.dtype)
        for row, op in enumerate(cell.ops):
            if op is not None:
                keep[row] = 0.0
                fixed[row, op] = 1.0
        for row in cell.removed_rows():
            keep[row] = 0.0
            fixed[row] = 0.0
        if self.cut is not None and self.cut[0] == reduction:
            _, row, op = self.cut
            cols = slice(None) if op is None else op
            keep[row, cols] = 0.0
            fixed[row, cols] = 0.0
        return keep.to(like.device), fixed.to(like.device)

    def decided(self) -> int:
        """Decisions taken, counting each cell's op and input decisions."""
        return sum(
            sum(op is not None for op in c.ops) + sum(k is not None for k in c.inputs)
            for c in (self.normal, self.reduce)
        )

    def to_dict(self) -> dict[str, Any]:
        # Plain lists and ints: the search state loads with weights_only=True.
        def cell(c: CellChoice) -> dict[str, Any]:
            return {
                "ops": [-1 if op is None else op for op in c.ops],
                "inputs": [[] if k is None else list(k) for k in c.inputs],
            }

        return {"normal": cell(self.normal), "reduce": cell(self.reduce)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Projection:
        def cell(d: dict[str, Any]) -> CellChoice:
            return CellChoice(
                tuple(None if op < 0 else int(op) for op in d["ops"]),
                tuple(None if not k else (int(k[0]), int(k[1])) for k in d["inputs"]),
            )

        return cls(cell(data["normal"]), cell(data["reduce"]))
