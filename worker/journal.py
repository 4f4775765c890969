"""A job's attempt journal: one JSON line per event, beside its work directory.

It answers the questions an operator (and the tests) ask after a worker died: which
worker ran which attempt, until when each lease was extended, and where each attempt
started its stages (a resumed search starts past step 1). Lease extensions are written
*before* the database renewal, so the journal never shows less lease than a worker had.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

JOURNAL_NAME = "attempts.jsonl"

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, path: Path, attempt: int) -> None:
        self.path = path
        self.attempt = attempt  # the run number (`Lease.run`): one per claim

    def write(self, event: str, **fields: Any) -> None:
        """Append one event. Best effort: the journal explains, the database decides, so
        a full disk or a lost volume costs the line, not the job (it is logged)."""
        record = {"event": event, "attempt": self.attempt, **fields}
        line = json.dumps(record, default=_jsonable, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write() of one short line with O_APPEND: lines never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("journal %s: could not write %s (%s)", self.path, event, exc)


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every event, oldest first; a torn last line (a crash mid-write) is skipped."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
