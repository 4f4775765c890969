"""Progress reporting and cooperative cancellation, shared by every stage.

Stages never print and never know about Celery: they call `on_progress(Progress(...))`
and check a `CancelToken` at step boundaries.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Progress:
    stage: str  # e.g. "selecting", "searching", "retraining", "evaluating"
    step: int  # steps done so far in this stage
    total: int  # steps this stage will take (0 when unknown)
    metrics: Mapping[str, float] = field(default_factory=dict)


ProgressCallback = Callable[[Progress], None]


def ignore_progress(progress: Progress) -> None:
    """The default callback: drop progress reports."""


class RepairCancelled(Exception):
    """Raised at a step boundary after cancellation was requested."""


class CancelToken:
    """Thread-safe flag; `check` is cheap enough to call every step.

    `poll`, when given, is called at most every `poll_interval` seconds by `check` and
    cancels the token when it returns True (e.g. a database lookup of the job's status).
    """

    def __init__(self, poll: Callable[[], bool] | None = None, poll_interval: float = 1.0) -> None:
        self._event = threading.Event()
        self._poll = poll
        self._poll_interval = poll_interval
        self._last_poll = 0.0

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        if not self._event.is_set() and self._poll is not None:
            import time

            now = time.monotonic()
            if now - self._last_poll >= self._poll_interval:
                self._last_poll = now
                if self._poll():
                    self._event.set()
        return self._event.is_set()

    def check(self) -> None:
        """Raise `RepairCancelled` if cancellation was requested."""
        if self.cancelled:
            raise RepairCancelled("repair cancelled")
