"""The hard time limit, recorded: a job whose process Celery killed at the limit fails
with `TimeLimitExceeded` instead of being handed on to burn the limit again.

The soft limit comes first and hands the job on cleanly (`worker.runner`); reaching the
hard limit means the run did not stop in time (stuck in one long native call, or its
process was paused). Celery handles it in the worker's main process: it kills the job
process and acknowledges the message. `RepairRequest.on_timeout` then marks the job failed
in the database, fenced on the lease of the killed process (`lease_owner` is
"<hostname>/<pid>", set by the claim), so a job that another worker holds by now is left
alone. Without this the row would stay `running` until its lease expired and the sweeper
re-queued it.
"""

from __future__ import annotations

import logging
import uuid

from celery.worker.request import Request

from api.db.jobs import LEASED_STATUSES, transition
from api.db.models import JobStatus, RepairJob
from api.db.session import make_engine, make_session_factory
from api.settings import Settings
from worker.failures import time_limit_message
from worker.lease import utcnow

log = logging.getLogger(__name__)


class RepairRequest(Request):  # type: ignore[misc]
    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if soft or self.worker_pid is None or not self.args:
            return
        try:
            record_hard_limit(self.task.app.repair_settings, str(self.args[0]),
                              lease_owner=f"{self.hostname}/{self.worker_pid}")  # fmt: skip
        except Exception:
            # The job keeps its lease; when it expires the sweeper hands the job on.
            log.warning("could not record the hard time limit of job %s", self.args[0],
                        exc_info=True)  # fmt: skip


def record_hard_limit(settings: Settings, job_id: str, *, lease_owner: str) -> bool:
    """Fail `job_id` with `TimeLimitExceeded` if `lease_owner` still holds it."""
    hard = settings.worker.phase_hard_seconds
    now = utcnow()
    engine = make_engine(settings.database.url)
    try:
        with make_session_factory(engine)() as session:
            moved = transition(
                session, uuid.UUID(job_id), to=JobStatus.failed, from_=LEASED_STATUSES,
                where=RepairJob.lease_owner == lease_owner[:255],
                values={
                    "error_type": "TimeLimitExceeded",
                    "error": f"{time_limit_message(hard)}; the run did not stop at the soft "
                    "limit and its process was killed",
                    "lease_token": None, "lease_expires_at": None, "eta_seconds": None,
                    "finished_at": now, "updated_at": now,
                },
            )  # fmt: skip
            session.commit()
    finally:
        engine.dispose()
    log.info("job %s: hard time limit recorded: %s", job_id, "failed" if moved else "not ours")
    return moved
