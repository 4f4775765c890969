"""The report's figures, by the names in `repair_core.choices.FIGURE_NAMES`, as PNG and SVG.

Cells of the deployed and the repaired genotype (`cell_graph`), the corruption x severity
heatmap (`heatmap`), the search curves (losses, normal-cell skip connections, the
eigenvalue where tracked), softmax(alpha) per edge over the search epochs, and the
retraining curves (`curves`). A figure whose data the repair does not have (a baseline
searched nothing, an older work directory recorded no alphas) is not drawn.

Drawn on `Figure`s with the Agg canvas (no pyplot state, no backend selection).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repair_core.atomic import atomic_path
from repair_core.choices import FIGURE_FORMATS, FIGURE_NAMES
from repair_core.evaluation.cell_graph import Cell, cell_graph, draw_cell
from repair_core.evaluation.curves import RepairCurves
from repair_core.evaluation.heatmap import draw_heatmaps, heatmap_grid
from repair_core.evaluation.report import EvaluationReport
from repair_core.search.genotype import Genotype
from repair_core.search.ops import PRIMITIVES

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class FigureInputs:
    report: EvaluationReport
    # None where the model is no DARTS network (a timm/torchvision/ONNX deployed model, a
    # baseline retraining it): its cell figures are not drawn.
    deployed: Genotype | None  # phi0's architecture
    repaired: Genotype | None  # the repaired model's
    curves: RepairCurves


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def cell_figure(genotype: Genotype, cell: Cell, title: str) -> Figure:
    graph = cell_graph(genotype, cell)
    figure = _figure(1.7 * len(graph.nodes), 4.0)
    axes = figure.add_axes((0.02, 0.02, 0.96, 0.88))
    draw_cell(axes, graph, title)
    return figure


def _series(epochs: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs = [float(e["epoch"]) for e in epochs if e.get(key) is not None]
    return xs, [float(e[key]) for e in epochs if e.get(key) is not None]


def search_figure(curves: RepairCurves) -> Figure | None:
    epochs = curves.search
    if not epochs:
        return None
    has_eigen = any(e.get("eigenvalue") is not None for e in epochs)
    figure = _figure(11.0 if has_eigen else 8.0, 3.4)
    axes = figure.subplots(1, 3 if has_eigen else 2, squeeze=False)[0]
    for key, label in (("loss", "train loss (weights)"), ("val_loss", "val loss (alphas)")):
        axes[0].plot(*_series(epochs, key), marker="o", label=label)
    axes[0].set_title("Search losses")
    axes[0].legend(fontsize="small")
    axes[1].plot(*_series(epochs, "skip_normal"), marker="o", color="tab:red")
    axes[1].set_title("Skip connections, normal cell")
    axes[1].set_ylim(bottom=0)
    if has_eigen:
        axes[2].plot(*_series(epochs, "eigenvalue"), marker="o", color="tab:purple")
        axes[2].set_title("Dominant Hessian eigenvalue")
    for axis in axes:
        axis.set_xlabel("search epoch")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def edge_names(steps: int) -> list[str]:
    """Edge k of the supernet's alpha rows as "input -> node": node i takes inputs 0..i+1."""
    names = []
    for node in range(steps):
        for source in range(node + 2):
            name = ("c_{k-2}", "c_{k-1}")[source] if source < 2 else str(source - 2)
            names.append(f"{name} -> {node}")
    return names


def alphas_figure(curves: RepairCurves, cell: Cell) -> Figure | None:
    key = f"alphas_{cell}"
    epochs = [e for e in curves.search if e.get(key)]
    if not epochs:
        return None
    first = epochs[0][key]
    n_edges, steps = len(first), 0
    while (steps + 1) * (steps + 4) // 2 <= n_edges:  # edges of `steps` nodes: s(s+3)/2
        steps += 1
    names = edge_names(steps) if steps * (steps + 3) // 2 == n_edges else []
    columns = min(5, n_edges)
    rows = math.ceil(n_edges / columns)
    figure = _figure(2.6 * columns, 2.0 * rows + 0.8)
    axes = figure.subplots(rows, columns, squeeze=False)
    xs = [float(e["epoch"]) for e in epochs]
    for k in range(rows * columns):
        axis = axes[k // columns][k % columns]
        if k >= n_edges:
            axis.set_axis_off()
            continue
        for p, primitive in enumerate(PRIMITIVES[: len(first[k])]):
            axis.plot(xs, [e[key][k][p] for e in epochs], label=primitive, color=f"C{p}")
        axis.set_title(names[k] if names else f"edge {k}", fontsize=8, pad=2)
        # Each edge on its own scale: near 1/8 each early on, the changes are what matter.
        axis.tick_params(labelsize=6)

    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize="small")
    figure.suptitle(f"softmax(alpha) per edge over the search, {cell} cell")
    # Fixed margins: tight_layout would draw the 14-panel figure once more just to measure.
    figure.subplots_adjust(left=0.04, right=0.99, top=0.9, bottom=0.12, hspace=0.45, wspace=0.2)
    return figure


def retrain_figure(curves: RepairCurves) -> Figure | None:
    if not curves.retrain:
        return None
    figure = _figure(9.0, 3.4)
    loss_axis, acc_axis = figure.subplots(1, 2)
    for k, history in enumerate(curves.retrain, start=1):
        suffix = f" (iteration {k})" if len(curves.retrain) > 1 else ""
        loss_axis.plot(*_series(history, "loss"), marker="o", label=f"train loss{suffix}")
        for key, label in (("train_acc", "train"), ("eval_acc", "eval")):
            xs, ys = _series(history, key)
            if xs:
                acc_axis.plot(xs, [100.0 * y for y in ys], marker="o", label=f"{label}{suffix}")
    loss_axis.set_title("Retraining loss")
    acc_axis.set_title("Retraining accuracy (%)")
    for axis in (loss_axis, acc_axis):
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def _cell_builder(genotype: Genotype | None, cell: Cell, which: str) -> Callable[[], Figure | None]:
    if genotype is None:
        return lambda: None
    return lambda: cell_figure(genotype, cell, f"{which} genotype, {cell} cell")


def build_figures(inputs: FigureInputs) -> dict[str, Callable[[], Figure | None]]:
    """Figure name -> a function drawing it (None: no data for it)."""
    report = inputs.report

    def heatmap() -> Figure | None:
        return draw_heatmaps(heatmap_grid(report)) if report.corruptions else None

    builders: dict[str, Callable[[], Figure | None]] = {
        "robustness-heatmap": heatmap,
        "search-curves": lambda: search_figure(inputs.curves),
        "search-alphas-normal": lambda: alphas_figure(inputs.curves, "normal"),
        "search-alphas-reduce": lambda: alphas_figure(inputs.curves, "reduce"),
        "retrain-curves": lambda: retrain_figure(inputs.curves),
    }
    cells: tuple[Cell, ...] = ("normal", "reduce")
    for which, genotype in (("deployed", inputs.deployed), ("repaired", inputs.repaired)):
        for cell in cells:
            builders[f"cell-{which}-{cell}"] = _cell_builder(genotype, cell, which)
    assert set(builders) == set(FIGURE_NAMES), "every named figure has a builder"
    return builders


def write_figures(inputs: FigureInputs, out_dir: Path) -> list[str]:
    """Draw every figure the inputs have data for into `out_dir` (atomic writes), in every
    format; returns the file names written, e.g. `robustness-heatmap.svg`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    for name, build in build_figures(inputs).items():
        figure = build()
        if figure is None:
            continue
        for fmt in FIGURE_FORMATS:
            with atomic_path(out_dir / f"{name}.{fmt}") as tmp:
                figure.savefig(tmp, format=fmt)
            written.append(f"{name}.{fmt}")
    return written
