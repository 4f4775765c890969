"""Plain-words verdicts: is a repaired row better than the control on the failure corruption,
and not worse on clean images and the other corruptions?

phi0 scores 0 % on its own failures by construction, so any freshly trained network beats it
there; the honest baseline is the control row (the deployed architecture retrained with
another seed and no failure guidance). Each verdict compares paired per-seed differences:

- with n >= 2 seeds, "better" when mean - 2 se > 0, "worse" when mean + 2 se < 0 (se = std/√n);
- with one seed, the same words against a binomial margin 2·100·sqrt(2 p (1-p) / N), the
  ~95 % band of the difference of two accuracies p measured on N images each.

Anything inside the band is "no clear change". Plain Python, no torch.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

BETTER, WORSE, UNCLEAR = "better", "worse", "no clear change"

# The repaired model may cost at most this many points of clean accuracy before the report
# warns in words (and the job record carries the flag).
CLEAN_DROP_POINTS = 1.0

NO_CONTROL = (
    "no control row: gains are against phi0, which scores 0 % on its own failures by construction"
)


@dataclass(frozen=True)
class ScoreTable:
    """One report's Table 2 at one severity, as the verdicts read it."""

    columns: list[tuple[str, dict[str, float | None]]]  # header -> model -> accuracy %
    models: tuple[str, ...]  # row order; "original" first
    control: str | None  # the control row's name, when the report has one
    images: dict[str, int]  # header -> images that column was measured on


@dataclass(frozen=True)
class Verdict:
    model: str
    baseline: str  # the control row, or "original" when there is none
    n_seeds: int
    deltas: dict[str, tuple[float, float | None]]  # column -> (mean, std over seeds | None)
    words: dict[str, str]  # column -> better | worse | no clear change
    summary: str

    def line(self) -> str:
        parts = []
        for column, (mean, std) in self.deltas.items():
            spread = f" ± {std:.2f}" if std is not None else ""
            parts.append(f"{column} {mean:+.2f}{spread} ({self.words[column]})")
        seeds = f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''}"
        return f"- **{self.model}** vs {self.baseline} ({seeds}): {self.summary}; " + ", ".join(
            parts
        )


def verdict_word(mean: float, std: float | None, n: int, p: float, images: int) -> str:
    """better / worse / no clear change for a mean difference of accuracies (in points)."""
    if n >= 2 and std is not None:
        margin = 2.0 * std / math.sqrt(n)
    else:
        margin = 2.0 * 100.0 * math.sqrt(2.0 * p * (1.0 - p) / images) if images > 0 else math.inf
    if mean - margin > 0:
        return BETTER
    if mean + margin < 0:
        return WORSE
    return UNCLEAR


def verdicts(tables: Sequence[ScoreTable]) -> list[Verdict]:
    """One verdict per model except the original and the control, from per-seed tables."""
    if not tables:
        return []
    first = tables[0]
    baseline = first.control or "original"
    compared = [h for h, _ in first.columns if h.endswith("_all") or h.endswith("_fail")] + [
        h for h, _ in first.columns if h in ("Clean", "Mean")
    ]
    key = next((h for h in compared if h.endswith("_all")), None)
    key = key or next((h for h in compared if h.endswith("_fail")), None)
    out = []
    for model in first.models:
        if model in ("original", baseline):
            continue
        deltas: dict[str, tuple[float, float | None]] = {}
        words: dict[str, str] = {}
        n_seeds = 0
        for header in compared:
            pairs = []
            for table in tables:
                row = dict(table.columns).get(header, {})
                a, b = row.get(model), row.get(baseline)
                if a is not None and b is not None:
                    pairs.append((a, b))
            if not pairs:
                continue
            diffs = [a - b for a, b in pairs]
            n = len(diffs)
            n_seeds = max(n_seeds, n)
            mean = statistics.mean(diffs)
            std = statistics.stdev(diffs) if n >= 2 else None
            p = statistics.mean(a + b for a, b in pairs) / 200.0
            deltas[header] = (mean, std)
            words[header] = verdict_word(mean, std, n, p, first.images.get(header, 0))
        out.append(Verdict(model, baseline, n_seeds, deltas, words, _summary(words, key)))
    return out


def _summary(words: dict[str, str], key: str | None) -> str:
    if key is None or key not in words:
        return "no failure column to judge"
    label = key.rsplit("_", 1)[0]
    worse = [c for c in ("Clean", "Mean") if words.get(c) == WORSE]
    if words[key] == BETTER and not worse:
        return f"repairs {label} beyond retraining"
    if words[key] == BETTER:
        return f"trades: {label} better, {' and '.join(worse)} worse"
    return "no repair beyond retraining"


def verdict_lines(found: Sequence[Verdict]) -> list[str]:
    """Markdown lines for under a table (empty when there is nothing to judge)."""
    if not found:
        return []
    lines = [v.line() for v in found]
    if found[0].baseline == "original":
        lines.insert(0, NO_CONTROL + ".")
    return [
        "",
        "Verdicts (difference in points vs the baseline row; better/worse only outside "
        "2 standard errors, or a binomial margin for one seed):",
        "",
        *lines,
    ]


def clean_drop_warning(
    deployed: float, repaired: float, *, model: str, limit: float = CLEAN_DROP_POINTS
) -> str | None:
    """A sentence when `repaired` clean accuracy (%) is more than `limit` points below the
    deployed model's, else None."""
    drop = deployed - repaired
    if not drop > limit:
        return None
    return (
        f"the repaired model ({model}) scores {repaired:.2f} % on clean test images, "
        f"{drop:.2f} points below the deployed model's {deployed:.2f} % (more than "
        f"{limit:g} point{'s' if limit != 1 else ''}): check it before deploying"
    )
