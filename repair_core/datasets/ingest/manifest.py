"""The labels manifest of a failure batch: `labels.csv` or `labels.json`.

CSV: a header with `file` and `label` columns, one row per image. JSON: a list of
`{"file": ..., "label": ...}` objects or one `{file: label}` map. The table format and
the label rules are `repair_core.label_rows` (shared with the labels an owner uploads
for the picks of a repair). An image without a row is an unlabeled failure.
"""

from __future__ import annotations

from repair_core.label_rows import LabelRow, parse_label_rows, report, resolve_label

MANIFEST_NAMES = ("labels.csv", "labels.json")
ManifestRow = LabelRow

__all__ = ["MANIFEST_NAMES", "ManifestRow", "parse_manifest", "report", "resolve_label"]


def parse_manifest(
    name: str, data: bytes, class_names: tuple[str, ...]
) -> tuple[list[ManifestRow], list[str]]:
    """Rows with resolved labels, and one message per offending row."""
    return parse_label_rows(name, data, class_names, key="file")
