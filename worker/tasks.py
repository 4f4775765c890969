"""The Celery task: thin, idempotent, retried only for named transient errors.

`repair.run_job(job_id)` re-reads the job and returns at once when it is finished,
running under someone else's live lease, or out of attempts; otherwise it runs it
(`worker.runner`). The pipeline and torch are imported inside the task, so the
worker's parent process (which also runs the sweeper) stays light.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from celery import Celery

from api.queue import RUN_JOB_TASK
from worker.transient import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

# Transient errors: up to this many retries, 2 s, 4 s, ... at most a minute apart (with
# jitter). After that the job stays queued and the sweeper sends it again later.
MAX_RETRIES = 6
RETRY_BACKOFF_MAX_SECONDS = 60


def register_tasks(app: Celery) -> None:
    """Add `repair.run_job` to `app` (a `worker.celery_app.RepairCelery`: the task reads
    the settings from `task.app.repair_settings`)."""
    app.task(
        name=RUN_JOB_TASK,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=TRANSIENT_ERRORS,
        retry_backoff=2,
        retry_backoff_max=RETRY_BACKOFF_MAX_SECONDS,
        retry_jitter=True,
        max_retries=MAX_RETRIES,
        Request="worker.hard_limit:RepairRequest",
    )(run_job)


def run_job(task: Any, job_id: str) -> str:
    """The body of `repair.run_job`; `task` is the bound Celery task."""
    from worker.context import process_context
    from worker.runner import run_job as run
    from worker.shutdown import handoff_on_signals

    try:
        parsed = uuid.UUID(str(job_id))
    except ValueError:
        log.error("ignoring a %s message with an invalid job id %r", RUN_JOB_TASK, job_id)
        return "invalid"
    context = process_context(task.app.repair_settings)
    worker = f"{task.request.hostname or 'worker'}/{os.getpid()}"
    with handoff_on_signals():
        return run(context, parsed, worker=worker).value
