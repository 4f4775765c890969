"""A DARTS cell as a graph (nodes, edges labelled with their operation), and its drawing.

`cell_graph` is the pure part the tests read; `draw_cell` lays it out on matplotlib axes
by hand (inputs on the left, intermediate nodes in a column each, the output on the
right), so no graph-layout binary such as graphviz's `dot` is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from repair_core.search.genotype import Genotype

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Cell = Literal["normal", "reduce"]
INPUT_NAMES = ("c_{k-2}", "c_{k-1}")
OUTPUT_NAME = "c_{k}"
CONCAT_LABEL = "concat"


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    label: str  # the operation, or "concat" for an edge into the output


@dataclass(frozen=True)
class CellGraph:
    cell: Cell
    nodes: tuple[str, ...]  # inputs, intermediate nodes "0".."n-1", output
    edges: tuple[GraphEdge, ...]


def _state_name(state: int) -> str:
    return INPUT_NAMES[state] if state < 2 else str(state - 2)


def cell_graph(genotype: Genotype, cell: Cell) -> CellGraph:
    """The nodes and labelled edges of one cell: each intermediate node has two incoming
    operations; the states in the concat list feed the output."""
    pairs = genotype.normal if cell == "normal" else genotype.reduce
    concat = genotype.normal_concat if cell == "normal" else genotype.reduce_concat
    steps = len(pairs) // 2
    nodes = (*INPUT_NAMES, *(str(i) for i in range(steps)), OUTPUT_NAME)
    edges = [
        GraphEdge(_state_name(source), str(k // 2), op) for k, (op, source) in enumerate(pairs)
    ]
    edges += [GraphEdge(_state_name(state), OUTPUT_NAME, CONCAT_LABEL) for state in concat]
    return CellGraph(cell, nodes, tuple(edges))


def _positions(graph: CellGraph) -> dict[str, tuple[float, float]]:
    steps = len(graph.nodes) - 3
    positions = {INPUT_NAMES[0]: (0.0, 0.25), INPUT_NAMES[1]: (0.0, 0.75)}
    for i in range(steps):
        # Staggered heights so edges from the inputs do not run through other nodes.
        positions[str(i)] = (1.0 + i, 0.15 + 0.7 * ((i % 2) * 0.8 + 0.1))
    positions[OUTPUT_NAME] = (steps + 1.0, 0.5)
    return positions


def draw_cell(axes: Axes, graph: CellGraph, title: str) -> None:
    """Nodes as labelled boxes, edges as arrows labelled with their operation."""
    positions = _positions(graph)
    for edge in graph.edges:
        (x0, y0), (x1, y1) = positions[edge.source], positions[edge.target]
        concat = edge.label == CONCAT_LABEL
        # Edges between the same columns bend apart so their labels do not overlap.
        bend = 0.0 if concat else 0.15 * (1 if y1 >= y0 else -1)
        axes.annotate(
            "", xy=(x1, y1), xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>", "color": "0.6" if concat else "tab:blue", "lw": 1.0,
                "shrinkA": 14, "shrinkB": 14, "connectionstyle": f"arc3,rad={bend}",
                "linestyle": "dashed" if concat else "solid",
            },
        )  # fmt: skip
        if not concat:
            axes.text(
                x0 + 0.55 * (x1 - x0), y0 + 0.55 * (y1 - y0) + bend * 0.3, edge.label,
                fontsize=7, ha="center", va="center", color="tab:blue",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )  # fmt: skip
    for node in graph.nodes:
        x, y = positions[node]
        colour = "lightgreen" if node in INPUT_NAMES else "khaki" if node == OUTPUT_NAME else "w"
        axes.text(
            x, y, node, ha="center", va="center", fontsize=9, zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "fc": colour, "ec": "black"},
        )  # fmt: skip
    axes.set_xlim(-0.4, len(graph.nodes) - 1.6)
    axes.set_ylim(-0.05, 1.05)
    axes.set_axis_off()
    axes.set_title(title)
