"""The upkeep sweep (`api.services.upkeep`) on every worker's timer, every
`upkeep.interval_seconds`, the first a few seconds after the worker starts.

On the worker's own timer for the reasons the job sweeper is (`worker.sweeper`): no extra
process to deploy, nothing to keep exactly one of, and no thread in a process that forks
job children. Several workers sweeping at once is safe (see `api.services.upkeep`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps

from api.db.session import make_engine, make_session_factory
from api.services.upkeep import UpkeepReport, run_upkeep
from api.settings import Settings
from api.storage import open_store

log = logging.getLogger(__name__)

FIRST_SWEEP_AFTER_SECONDS = 5.0


class Upkeep:
    """Runs one upkeep sweep when called; holds no connection between calls (the worker
    forks job processes from the process it runs in)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._store = open_store(settings.artifacts)

    def __call__(self) -> UpkeepReport | None:
        engine = make_engine(self._settings.database.url)
        try:
            return run_upkeep(make_session_factory(engine), self._store, self._settings.upkeep)
        except Exception:
            log.warning("upkeep: sweep failed; trying again later", exc_info=True)
            return None
        finally:
            engine.dispose()


class UpkeepStep(bootsteps.StartStopStep):  # type: ignore[misc]
    label = "repair upkeep"
    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.timers: list[Any] = []

    def start(self, parent: Any) -> None:
        settings: Settings = parent.app.repair_settings
        upkeep = Upkeep(settings)
        self.timers = [
            parent.timer.call_after(FIRST_SWEEP_AFTER_SECONDS, upkeep),
            parent.timer.call_repeatedly(settings.upkeep.interval_seconds, upkeep),
        ]

    def stop(self, parent: Any) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers = []

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
