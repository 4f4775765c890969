"""The corruption x severity grid of accuracies: deployed, repaired and their difference.

`heatmap_grid` reads the numbers from the report (the cells of the figure are exactly
the report's values); `draw_heatmaps` draws the three panels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from repair_core.errors import RepairInputError
from repair_core.evaluation.report import EvaluationReport, short_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEPLOYED_ROW = "original"


@dataclass(frozen=True)
class HeatmapGrid:
    corruptions: tuple[str, ...]  # rows
    severities: tuple[int, ...]  # columns
    deployed: tuple[tuple[float, ...], ...]  # top-1 %, [corruption][severity]
    repaired: tuple[tuple[float, ...], ...]
    repaired_name: str

    @property
    def difference(self) -> tuple[tuple[float, ...], ...]:
        """Repaired minus deployed, in percentage points."""
        return tuple(
            tuple(r - d for r, d in zip(rr, dd, strict=True))
            for rr, dd in zip(self.repaired, self.deployed, strict=True)
        )


def heatmap_grid(report: EvaluationReport, repaired: str | None = None) -> HeatmapGrid:
    """The report's accuracies per corruption and severity for phi0 and the repaired row
    (default: the primary variant's last row)."""
    name = repaired if repaired is not None else (report.primary_rows or ["original"])[-1]
    if name not in report.models or DEPLOYED_ROW not in report.models:
        raise RepairInputError(f"report has no rows {DEPLOYED_ROW!r} and {name!r}")
    if not report.corruptions:
        raise RepairInputError("the report scored no corruptions: there is no heatmap")

    def grid(model: str) -> tuple[tuple[float, ...], ...]:
        scores = report.models[model]
        return tuple(tuple(scores.at(c, s) for s in report.severities) for c in report.corruptions)

    return HeatmapGrid(report.corruptions, report.severities, grid(DEPLOYED_ROW), grid(name), name)


def draw_heatmaps(grid: HeatmapGrid) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, cols = len(grid.corruptions), len(grid.severities)
    figure = Figure(figsize=(3.2 * 3 + 1.5, max(3.6, 0.38 * rows + 1.8)), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 3, squeeze=False)[0]
    difference = grid.difference
    spread = max((abs(v) for row in difference for v in row), default=1.0) or 1.0
    panels = (
        (f"deployed ({DEPLOYED_ROW})", grid.deployed, "viridis", 0.0, 100.0),
        (f"repaired ({grid.repaired_name})", grid.repaired, "viridis", 0.0, 100.0),
        ("repaired - deployed (points)", difference, "RdYlGn", -spread, spread),
    )
    for axis, (title, values, cmap, low, high) in zip(axes, panels, strict=True):
        image = axis.imshow(values, cmap=cmap, vmin=low, vmax=high, aspect="auto")
        for i in range(rows):
            for j in range(cols):
                axis.text(j, i, f"{values[i][j]:.1f}", ha="center", va="center", fontsize=7)
        axis.set_xticks(range(cols))
        axis.set_xticklabels([str(s) for s in grid.severities])
        axis.set_xlabel("severity")
        axis.set_yticks(range(rows))
        axis.set_yticklabels([short_name(c) for c in grid.corruptions])
        axis.set_title(title, fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.05)
    figure.suptitle("Top-1 accuracy (%) per corruption and severity")
    # Fixed margins: tight_layout would draw the figure once more just to measure it.
    figure.subplots_adjust(left=0.08, right=0.97, top=0.86, bottom=0.12, wspace=0.35)
    return figure
