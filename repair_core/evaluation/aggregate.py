"""Several seeds' reports as one table: mean ± std per cell, and verdicts on paired deltas.

Each seed's report scores its own models on its own held-out images; the aggregate pairs a
model with the baseline row (the control, else phi0) seed by seed, so the spread of the
differences, not of the raw accuracies, decides the verdict words (`evaluation.verdict`).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from repair_core.evaluation.report import EvaluationReport
from repair_core.evaluation.verdict import Verdict, verdict_lines, verdicts


def summarise(reports: Sequence[EvaluationReport], severity: int | None) -> str:
    """Mean ± std over seeds per model and column (the paper's Table 2 layout), markdown."""
    first = reports[0]
    columns = [name for name, _ in first.columns(severity)]
    lines = ["| model | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for model in first.models:
        cells = []
        for column in columns:
            values = [
                v
                for r in reports
                for name, row in r.columns(severity)
                if name == column and (v := row.get(model)) is not None
            ]
            if not values:
                cells.append("-")
            elif len(values) == 1:
                cells.append(f"{values[0]:.2f}")
            else:
                cells.append(f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def aggregate_verdicts(reports: Sequence[EvaluationReport], severity: int | None) -> list[Verdict]:
    """One verdict per repaired model from the per-seed differences to the baseline row."""
    return verdicts([r.score_table(severity) for r in reports])


def summary_markdown(reports: Sequence[EvaluationReport], severity: int | None) -> str:
    """`summarise` followed by the verdict lines."""
    lines = [summarise(reports, severity), *verdict_lines(aggregate_verdicts(reports, severity))]
    return "\n".join(lines) + "\n"
