"""Tables of labels: a CSV with a key column and a `label` column, or JSON (a list of
`{key: ..., "label": ...}` objects or one `{key: label}` map).

Two uploads use it: the manifest of a failure batch (key `file`) and the labels an owner
gives for the picks of a repair (key `id`). A label is a class index (an int, or a string
of digits in CSV) or a class name; a string that is a class name wins over its reading as
a number. Every problem is collected and the first 20 are reported together, so one
upload round-trip shows what to fix. Standard library only: the API process parses the
picks' labels itself (a few kilobytes of text) and must not load torch.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from repair_core.errors import RepairInputError

_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
SHOWN = 20
# (where, key, label, problem with the row's shape or "") as parsed, before checks.
_Raw = tuple[str, object, object, str]


@dataclass(frozen=True)
class LabelRow:
    where: str  # "row 3" (CSV line) or "entry 2" / "key 'a.png'" (JSON), for messages
    file: str  # the row's key: a file name (manifest) or a pick id
    label: int


def parse_label_rows(
    name: str, data: bytes, class_names: tuple[str, ...], *, key: str
) -> tuple[list[LabelRow], list[str]]:
    """Rows with resolved labels, and one message per offending row; RepairInputError
    when the document as a whole is unreadable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RepairInputError(f"{name}: not UTF-8 text ({e})") from e
    raw = _csv_rows(name, text, key) if name.endswith(".csv") else _json_rows(name, text, key)
    rows, problems = [], []
    for where, value_key, value, shape_problem in raw:
        if shape_problem:
            problems.append(f"{where}: {shape_problem}")
            continue
        if isinstance(value_key, int) and not isinstance(value_key, bool):
            value_key = str(value_key)
        if not isinstance(value_key, str) or not value_key.strip():
            problems.append(f"{where}: {key!r} must be a non-empty string")
            continue
        label, problem = resolve_label(value, class_names)
        if problem:
            problems.append(f"{where} ({value_key}): {problem}")
        else:
            rows.append(LabelRow(where, value_key.strip(), label))
    return rows, problems


def resolve_label(value: object, class_names: tuple[str, ...]) -> tuple[int, str]:
    """(label, "") or (-1, why the value is not a label in [0, len(class_names)))."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return -1, f"label {value!r} is not an integer or a class name"
    if isinstance(value, str):
        text = value.strip()
        if text in class_names:
            return class_names.index(text), ""
        if not _INTEGER.match(text):
            return -1, f"label {value!r} is neither an integer nor a known class name"
        value = int(text)
    if not 0 <= value < len(class_names):
        return -1, f"label {value} outside [0, {len(class_names)})"
    return value, ""


def report(name: str, what: str, problems: list[str]) -> RepairInputError:
    shown = "; ".join(problems[:SHOWN])
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    return RepairInputError(f"{name}: {len(problems)} {what}: {shown}{more}")


def _csv_rows(name: str, text: str, key: str) -> list[_Raw]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [column.strip().lower() for column in next(reader, [])]
        if key not in header or "label" not in header:
            raise RepairInputError(f"{name}: the header must name {key!r} and 'label' columns")
        key_at, label_at = header.index(key), header.index("label")
        rows: list[_Raw] = []
        for record in reader:
            if not any(cell.strip() for cell in record):
                continue
            where = f"row {reader.line_num}"
            if len(record) != len(header):
                problem = f"{len(record)} columns, the header has {len(header)}"
                rows.append((where, None, None, problem))
                continue
            rows.append((where, record[key_at], record[label_at], ""))
    except csv.Error as e:
        raise RepairInputError(f"{name}: not valid CSV ({e})") from e
    return rows


def _json_rows(name: str, text: str, key: str) -> list[_Raw]:
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError as e:
        raise RepairInputError(f"{name}: JSON nested too deeply") from e
    except ValueError as e:  # JSONDecodeError, or a duplicate key from the hook
        raise RepairInputError(f"{name}: not valid JSON ({e})") from e
    if isinstance(document, dict):
        return [(f"key {k!r}", k, label, "") for k, label in document.items()]
    if not isinstance(document, list):
        raise RepairInputError(
            f'{name}: expected a list of {{"{key}", "label"}} objects or a {{{key}: label}} map'
        )
    rows: list[_Raw] = []
    for i, entry in enumerate(document):
        if isinstance(entry, dict) and key in entry and "label" in entry:
            rows.append((f"entry {i}", entry[key], entry["label"], ""))
        else:
            rows.append((f"entry {i}", None, None, f'not an object with "{key}" and "label"'))
    return rows


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result
