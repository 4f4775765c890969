"""The evaluation report: accuracies of the original and repaired models, as JSON and as a
markdown table in the layout of the paper's Table 2 (`evaluation.plot` draws its Figure 3).

Accuracies are top-1 percentages, the paper's unit: the report is the one place that
states them so; everything upstream counts in fractions (see `evaluation.accuracy`). The
JSON also carries the means (derived, recomputed on load) so that a reader of the file
alone sees them. Plain Python: reading or writing a report needs no torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from repair_core.errors import RepairInputError
from repair_core.evaluation.verdict import ScoreTable, Verdict, verdict_lines, verdicts

FORMAT = "cf-darts-evaluation/1"

# Column names of the paper's tables.
SHORT_NAMES = {
    "gaussian_noise": "Gauss",
    "shot_noise": "Shot",
    "impulse_noise": "Impulse",
    "defocus_blur": "Defocus",
    "glass_blur": "Glass",
    "motion_blur": "Motion",
    "zoom_blur": "Zoom",
    "snow": "Snow",
    "frost": "Frost",
    "fog": "Fog",
    "brightness": "Bright",
    "contrast": "Contrast",
    "elastic_transform": "Elastic",
    "pixelate": "Pixel",
    "jpeg_compression": "Jpeg",
}


def percent(correct: int, total: int) -> float:
    """The report's unit: `correct` of `total` images as a top-1 percentage."""
    return 100.0 * correct / total


def _number(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}"


def short_name(corruption: str) -> str:
    return SHORT_NAMES.get(corruption, corruption)


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


@dataclass(frozen=True)
class ModelScores:
    clean: float  # top-1 % on the clean test split
    held_out_failures: float | None  # top-1 % on D_fail minus C; None when not evaluated
    corruptions: dict[str, dict[int, float]]  # corruption name -> severity -> top-1 %

    def at(self, corruption: str, severity: int | None) -> float:
        """Accuracy on one corruption at one severity, or averaged over severities (None)."""
        by_severity = self.corruptions[corruption]
        if severity is None:
            return sum(by_severity.values()) / len(by_severity)
        return by_severity[severity]

    def corruption_mean(self, names: Iterable[str], severity: int | None = None) -> float | None:
        return _mean(self.at(name, severity) for name in names)


@dataclass(frozen=True)
class EvaluationReport:
    models: dict[str, ModelScores]  # row order of the table: original first, then repairs
    failure_corruption: str | None = None  # the corruption the failures came from, if known
    # JSON-native extras: counts, timings; "control" and "primary" name those rows when set.
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models:
            raise RepairInputError("an evaluation report needs at least one model")
        layouts = {
            name: {c: sorted(s) for c, s in scores.corruptions.items()}
            for name, scores in self.models.items()
        }
        first_name, first = next(iter(layouts.items()))
        for name, layout in layouts.items():
            if layout != first:
                raise RepairInputError(
                    f"model {name!r} was evaluated on other corruptions/severities than "
                    f"{first_name!r}"
                )

    @property
    def corruptions(self) -> tuple[str, ...]:
        return tuple(next(iter(self.models.values())).corruptions)

    @property
    def severities(self) -> tuple[int, ...]:
        by_corruption = next(iter(self.models.values())).corruptions
        return tuple(sorted(next(iter(by_corruption.values())))) if by_corruption else ()

    @property
    def other_corruptions(self) -> tuple[str, ...]:
        """The corruption columns of Table 2: all but the one the failures came from."""
        return tuple(c for c in self.corruptions if c != self.failure_corruption)

    @property
    def has_all_column(self) -> bool:
        """Whether the whole test split was scored under the failure corruption."""
        return self.failure_corruption is not None and self.failure_corruption in self.corruptions

    @property
    def control(self) -> str | None:
        name = self.info.get("control")
        return name if isinstance(name, str) and name in self.models else None

    def primary_rows(self) -> list[str]:
        """The repaired variant's rows (one per iteration, the last is the repaired model);
        a report without roles (written before the control existed) is read by position."""
        rows = self.info.get("rows")
        primary = self.info.get("primary")
        if isinstance(rows, dict) and isinstance(primary, str) and primary in rows:
            return [str(r) for r in rows[primary]]
        return [n for n in self.models if n != "original"] or ["original"]

    def mean(self, model: str, severity: int | None = None) -> float | None:
        """Mean accuracy over `other_corruptions` at `severity` (None: over all severities)."""
        return self.models[model].corruption_mean(self.other_corruptions, severity)

    # --- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        models: dict[str, Any] = {}
        for name, scores in self.models.items():
            models[name] = {
                "clean": scores.clean,
                "held_out_failures": scores.held_out_failures,
                "corruptions": {
                    c: {str(s): acc for s, acc in by_sev.items()}
                    for c, by_sev in scores.corruptions.items()
                },
                # Derived, for readers of the file; ignored by `from_dict`.
                "mean_by_severity": {str(s): self.mean(name, s) for s in self.severities},
                "mean": self.mean(name),
            }
        return {
            "format": FORMAT,
            "failure_corruption": self.failure_corruption,
            "models": models,
            "info": self.info,
        }

    def to_json(self, indent: int | None = 2) -> str:
        # allow_nan=False: NaN is not JSON, and a NaN accuracy is a bug to surface, not store.
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        try:
            if data.get("format") != FORMAT:
                raise RepairInputError(f"not an evaluation report of format {FORMAT!r}")
            models = {
                str(name): ModelScores(
                    clean=float(entry["clean"]),
                    held_out_failures=(
                        None
                        if entry["held_out_failures"] is None
                        else float(entry["held_out_failures"])
                    ),
                    corruptions={
                        str(c): {int(s): float(acc) for s, acc in by_sev.items()}
                        for c, by_sev in entry["corruptions"].items()
                    },
                )
                for name, entry in data["models"].items()
            }
            return cls(models, data["failure_corruption"], dict(data.get("info", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, RepairInputError):
                raise
            raise RepairInputError(f"malformed evaluation report: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> EvaluationReport:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RepairInputError(f"evaluation report is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise RepairInputError("evaluation report JSON must be an object")
        return cls.from_dict(data)

    # --- Table 2 --------------------------------------------------------------------------

    def columns(self, severity: int | None) -> list[tuple[str, dict[str, float | None]]]:
        """(header, model -> accuracy) for Clean, <corruption>_fail, <corruption>_all (the whole
        test split under the failure corruption, when it was scored), other corruptions, Mean."""
        columns: list[tuple[str, dict[str, float | None]]] = [
            ("Clean", {m: s.clean for m, s in self.models.items()})
        ]
        failures = {m: s.held_out_failures for m, s in self.models.items()}
        label = short_name(self.failure_corruption) if self.failure_corruption else "Failures"
        if self.failure_corruption is not None or any(v is not None for v in failures.values()):
            columns.append((f"{label}_fail", failures))
        if self.has_all_column:
            corruption = str(self.failure_corruption)
            columns.append(
                (f"{label}_all", {m: s.at(corruption, severity) for m, s in self.models.items()})
            )
        for c in self.other_corruptions:
            columns.append((short_name(c), {m: s.at(c, severity) for m, s in self.models.items()}))
        if self.other_corruptions:
            columns.append(("Mean", {m: self.mean(m, severity) for m in self.models}))
        return columns

    def to_markdown(self, severity: int | None = 5) -> str:
        """Rows = models; columns = Clean, <corruption>_fail, the other corruptions, Mean."""
        if severity is not None and severity not in self.severities:
            raise RepairInputError(f"severity {severity} not in this report: {self.severities}")
        columns = self.columns(severity)
        where = "averaged over severities" if severity is None else f"at severity {severity}"
        fail_headers = [header for header, _ in columns if header.endswith("_fail")]
        fail = f"{fail_headers[0]}: held-out failures (D_fail minus C). " if fail_headers else ""
        all_headers = [header for header, _ in columns if header.endswith("_all")]
        if all_headers:
            fail += (
                f"{all_headers[0]}: the whole test split under {self.failure_corruption} "
                "(phi0's correct and wrong images). "
            )
        elif fail_headers:
            fail += "(The failures are not named after a known corruption: no _all column.) "
        lines = [
            f"Top-1 accuracy (%) {where}. {fail}Mean: over the "
            f"{len(self.other_corruptions)} corruption columns.",
            "",
            "| Model | " + " | ".join(header for header, _ in columns) + " |",
            "| --- |" + " ---: |" * len(columns),
        ]
        for model in self.models:
            cells = ["—" if col[model] is None else f"{col[model]:.2f}" for _, col in columns]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.extend(verdict_lines(self.verdicts(severity)))
        return "\n".join(lines + self._health_lines()) + "\n"

    def _health_lines(self) -> list[str]:
        """The collapse guard per searched variant, and warnings; none in older reports."""
        variants = self.info.get("variants", {})
        healthy = {n: v["search_health"] for n, v in variants.items() if "search_health" in v}
        lines: list[str] = []
        if healthy:
            lines += [
                "",
                "Search health (normal cell of the searched architecture).",
                "",
                "| Variant | Skips | Parameter-free | Last λ | Max λ | Early stop |",
                "| --- | ---: | ---: | ---: | ---: | ---: |",
            ]
            for name, h in healthy.items():
                cells = [
                    str(h.get("skip_connections_normal")),
                    f"{h.get('parameter_free_normal')}/{h.get('edges_normal')}",
                    *(_number(h.get(k)) for k in ("eigenvalue_last", "eigenvalue_max")),
                    "—" if h.get("early_stopped_epoch") is None
                    else f"epoch {h['early_stopped_epoch']}",
                ]  # fmt: skip
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        warnings = self.info.get("warnings", [])
        if warnings:
            lines += ["", "Warnings:", ""] + [f"- {w}" for w in warnings]
        return lines

    # --- verdicts -------------------------------------------------------------------------

    def score_table(self, severity: int | None) -> ScoreTable:
        """This report's table at `severity`, as `evaluation.verdict` reads it."""
        columns = self.columns(severity)
        test_images = int(self.info.get("test_images", 0))
        images = {header: test_images for header, _ in columns}
        for header, _ in columns:
            if header.endswith("_fail"):
                images[header] = int(self.info.get("held_out_failures", 0))
        return ScoreTable(columns, tuple(self.models), self.control, images)

    def verdicts(self, severity: int | None) -> list[Verdict]:
        """Each repaired row against the control (or phi0 when there is none), one seed."""
        return verdicts([self.score_table(severity)])
