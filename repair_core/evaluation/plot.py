"""PNG charts of an evaluation report, like the paper's Figure 3.

The only module of `repair_core` that imports matplotlib, and only when called: it draws on a
`Figure` with the Agg canvas directly, so it never selects a backend or touches pyplot's
global state. Imports run one way, plot -> report: the report never draws, its callers
(the pipeline, the worker, repairctl, the benchmarks) call `plot_report`.
"""

from __future__ import annotations

import math
from pathlib import Path

from repair_core.atomic import atomic_path
from repair_core.errors import RepairInputError
from repair_core.evaluation.report import EvaluationReport


def _value(v: float | None) -> float:
    return math.nan if v is None else v  # NaN bars are simply not drawn


def plot_report(
    report: EvaluationReport,
    path: Path | str,
    *,
    severity: int | None = 5,
    baseline: str | None = None,
) -> Path:
    """Top: accuracy per column, one bar per model. Bottom (two or more models): each model's
    accuracy minus the baseline's (default: the first model, i.e. the original)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if severity is not None and severity not in report.severities:
        raise RepairInputError(f"severity {severity} not in this report: {report.severities}")
    models = list(report.models)
    baseline = models[0] if baseline is None else baseline
    if baseline not in report.models:
        raise RepairInputError(f"baseline {baseline!r} is not one of the models {models}")
    columns = report.columns(severity)
    headers = [header for header, _ in columns]
    others = [m for m in models if m != baseline]

    n_panels = 2 if others else 1
    figure = Figure(figsize=(max(8.0, 0.7 * len(headers) + 2), 3.6 * n_panels), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_panels, 1, squeeze=False)[:, 0]
    positions = list(range(len(headers)))
    width = 0.8 / len(models)
    where = "mean over severities" if severity is None else f"severity {severity}"

    top = axes[0]
    colour = {model: f"C{i}" for i, model in enumerate(models)}  # the same in both panels
    for i, model in enumerate(models):
        offset = (i - (len(models) - 1) / 2) * width
        heights = [_value(col[model]) for _, col in columns]
        top.bar([p + offset for p in positions], heights, width, label=model, color=colour[model])
    top.set_ylabel("top-1 accuracy (%)")
    top.set_ylim(0, 100)
    top.set_title(f"Accuracy per test set ({where})")
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")

    if others:
        bottom = axes[1]
        width = 0.8 / len(others)
        for i, model in enumerate(others):
            offset = (i - (len(others) - 1) / 2) * width
            diffs = [_value(col[model]) - _value(col[baseline]) for _, col in columns]
            # One repair: green for gains, red for losses; several: each in its own colour.
            colors = (
                ["tab:green" if d >= 0 else "tab:red" for d in diffs]
                if len(others) == 1
                else [colour[model]] * len(diffs)
            )
            bottom.bar([p + offset for p in positions], diffs, width, label=model, color=colors)
        bottom.axhline(0.0, color="black", linewidth=0.8)
        bottom.set_ylabel(f"difference to {baseline} (points)")
        bottom.set_title(f"Accuracy minus {baseline}'s ({where})")
        if len(others) > 1:
            bottom.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")

    for axis in axes:
        axis.set_xticks(positions)
        axis.set_xticklabels(headers, rotation=45, ha="right")
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)
