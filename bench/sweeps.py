"""Sweeps of one setting of the primary variant: the budget B (the paper's Table 6) and the
number of iterations (Figure 4), as a markdown table and a chart.

Each point is one report row scored on three sets: the held-out failures (those the row's
variant did not select, so their number shrinks as B grows), the whole corrupted test split
(the failures' corruption; comparable across B) and the clean test split. Several seeds give
mean ± std per value.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repair_core.evaluation.report import EvaluationReport

SWEPT = {"budget": "B (core failures)", "iterations": "iterations"}
# (field of SweepPoint, label in the table and the chart)
MEASURES = (
    ("held_out_failures", "held-out failures"),
    ("corrupted", "corrupted test split"),
    ("clean", "clean"),
)


@dataclass(frozen=True)
class SweepPoint:
    value: int  # the swept setting's value
    seed: int
    row: str  # the report row scored
    held_out_failures: float | None  # top-1 %, None when no labelled failure was held out
    corrupted: float | None  # top-1 % on the whole test split under the failures' corruption
    clean: float  # top-1 %
    held_out_count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_point(report: EvaluationReport, row: str, value: int, seed: int) -> SweepPoint:
    """The scores of `row` in `report` (one seed's run at one value)."""
    scores = report.models[row]
    corrupted = None
    if report.has_all_column and report.failure_corruption is not None:
        corrupted = scores.at(report.failure_corruption, max(report.severities))
    return SweepPoint(
        value=value,
        seed=seed,
        row=row,
        held_out_failures=scores.held_out_failures,
        corrupted=corrupted,
        clean=scores.clean,
        held_out_count=int(report.info.get("held_out_failures", 0)),
    )


def _cell(values: Sequence[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def _by_value(points: Sequence[SweepPoint]) -> dict[int, list[SweepPoint]]:
    grouped: dict[int, list[SweepPoint]] = {}
    for p in sorted(points, key=lambda p: (p.value, p.seed)):
        grouped.setdefault(p.value, []).append(p)
    return grouped


def sweep_table(points: Sequence[SweepPoint], swept: str) -> str:
    """Markdown: one line per swept value, top-1 % mean ± std over seeds per measure."""
    header = [SWEPT[swept], *(label for _, label in MEASURES), "held out"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for value, group in _by_value(points).items():
        cells = [
            _cell([v for p in group if (v := getattr(p, field)) is not None])
            for field, _ in MEASURES
        ]
        held = _cell([float(p.held_out_count) for p in group]).replace(".00", "")
        lines.append(f"| {value} | " + " | ".join(cells) + f" | {held} |")
    return "\n".join(lines) + "\n"


def plot_sweep(points: Sequence[SweepPoint], swept: str, path: Path, *, title: str = "") -> Path:
    """Accuracy vs the swept value, one line per measure (error bars: std over seeds)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grouped = _by_value(points)
    values = list(grouped)
    figure = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    for field, label in MEASURES:
        means, spreads = [], []
        for group in grouped.values():
            found = [v for p in group if (v := getattr(p, field)) is not None]
            means.append(statistics.mean(found) if found else math.nan)
            spreads.append(statistics.stdev(found) if len(found) > 1 else 0.0)
        ax.errorbar(values, means, yerr=spreads, marker="o", capsize=3, label=label)
    if swept == "budget":
        ax.set_xscale("log")
    ax.minorticks_off()  # the log axis would label 3x10^0 ... between the swept values
    ax.set_xticks(values, [str(v) for v in values])
    ax.set_xlabel(SWEPT[swept])
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title, fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path
