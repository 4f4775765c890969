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
    positions = {INPUT_NAMES[0]: (0.0, 0.2), INPUT_NAMES[1]: (0.0, 0.8)}
    for i in range(steps):
        # Staggered heights so edges from the inputs do not run through other nodes.
        positions[str(i)] = (1.0 + i, 0.25 if i % 2 == 0 else 0.75)
    positions[OUTPUT_NAME] = (steps + 1.0, 0.5)
    return positions


def _arc_middle(
    axes: Axes, start: tuple[float, float], end: tuple[float, float], rad: float
) -> tuple[float, float]:
    """The middle of matplotlib's `arc3` curve from `start` to `end`: a quadratic Bezier
    whose control point is offset by `rad` times the chord turned by 90 degrees, in
    display space (x and y have different scales here)."""
    to_display, to_data = axes.transData.transform, axes.transData.inverted().transform
    (x0, y0), (x1, y1) = to_display(start), to_display(end)
    cx, cy = (x0 + x1) / 2 + rad * (y1 - y0), (y0 + y1) / 2 - rad * (x1 - x0)
    middle = to_data((0.25 * x0 + 0.5 * cx + 0.25 * x1, 0.25 * y0 + 0.5 * cy + 0.25 * y1))
    return float(middle[0]), float(middle[1])


def draw_cell(axes: Axes, graph: CellGraph, title: str) -> None:
    """Nodes as labelled boxes, edges as arrows labelled with their operation."""
    positions = _positions(graph)
    # Limits first: the label positions are computed in display space.
    axes.set_xlim(-0.4, len(graph.nodes) - 1.6)
    axes.set_ylim(-0.1, 1.1)
    axes.set_axis_off()
    for k, edge in enumerate(graph.edges):
        start, end = positions[edge.source], positions[edge.target]
        concat = edge.label == CONCAT_LABEL
        # The two inputs of a node bend to opposite sides, so they and their labels part.
        rad = 0.0 if concat else (0.18 if k % 2 == 0 else -0.18)
        axes.annotate(
            "", xy=end, xytext=start,
            arrowprops={
                "arrowstyle": "-|>", "color": "0.6" if concat else "tab:blue", "lw": 1.0,
                "shrinkA": 14, "shrinkB": 14, "connectionstyle": f"arc3,rad={rad}",
                "linestyle": "dashed" if concat else "solid",
            },
        )  # fmt: skip
        if not concat:
            x, y = _arc_middle(axes, start, end, rad)
            axes.text(
                x, y, edge.label, fontsize=7, ha="center", va="center", color="tab:blue",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )  # fmt: skip
    for node in graph.nodes:
        x, y = positions[node]
        colour = "lightgreen" if node in INPUT_NAMES else "khaki" if node == OUTPUT_NAME else "w"
        axes.text(
            x, y, node, ha="center", va="center", fontsize=9, zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "fc": colour, "ec": "black"},
        )  # fmt: skip
    axes.set_title(title)
