"""The sweeper: finds jobs nobody is working on and hands them on.

- A running job whose lease expired (its worker was killed, ran out of memory, lost its
  machine) goes back to `queued` with its attempt count kept, and its message is sent
  again; another worker claims it and resumes from its work directory. After
  `max_attempts` it fails instead, with a clear error.
- A `cancelling` job whose lease expired is `cancelled` (nobody is left to stop).
- A `queued` job untouched for `requeue_queued_after_seconds` gets its message sent
  again (the broker lost it: Redis restart, FLUSHALL, the serverless broker's files).
  The gap doubles each time (2, 4, 8, ... minutes), so jobs waiting behind long ones
  add only a handful of duplicate messages, each of them a no-op.
- A job `awaiting_labels` holds no lease (nothing to re-queue); one that waited longer
  than `labels_wait_seconds` for its labels is cancelled, saying so.

It runs in every worker's main process, on the worker's timer, rather than as Celery
beat: there is no extra process to deploy or to keep exactly one of, the embedded
default needs none, and it keeps sweeping as long as any worker is alive. Running several
at once is safe: every change is a conditional UPDATE (Postgres also skips rows another
sweeper holds).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from celery import bootsteps
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.db.jobs import LEASED_STATUSES, transition
from api.db.models import JobStatus, RepairJob
from api.db.session import make_engine, make_session_factory
from api.queue import CeleryJobQueue, JobQueue
from api.settings import Settings, WorkerSettings
from worker.heartbeat import record_heartbeat
from worker.lease import utcnow

log = logging.getLogger(__name__)

BATCH = 100  # rows handled per sweep and kind; the next sweep takes the rest


@dataclass(frozen=True)
class SweepReport:
    requeued: list[uuid.UUID] = field(default_factory=list)
    failed: list[uuid.UUID] = field(default_factory=list)
    cancelled: list[uuid.UUID] = field(default_factory=list)
    resent: list[uuid.UUID] = field(default_factory=list)


def sweep(
    sessions: sessionmaker[Session],
    queue: JobQueue,
    settings: WorkerSettings,
    *,
    now: datetime | None = None,
) -> SweepReport:
    """One sweep; the rows are committed before any message is sent."""
    now = now or utcnow()
    report = SweepReport()
    with sessions() as session:
        _expired_leases(session, now, report)
        _stale_queued(session, now, settings.requeue_queued_after_seconds, report)
        _labels_overdue(session, now, settings.labels_wait_seconds, report)
        session.commit()
    for job_id in [*report.requeued, *report.resent]:
        try:
            queue.enqueue(job_id)
        except Exception:
            # The row stays queued; a later sweep sends it again.
            log.warning("sweeper: could not enqueue job %s", job_id, exc_info=True)
    for kind in ("requeued", "failed", "cancelled", "resent"):
        ids = getattr(report, kind)
        if ids:
            log.info("sweeper: %s %s", kind, ", ".join(map(str, ids)))
    return report


def _expired_leases(session: Session, now: datetime, report: SweepReport) -> None:
    expired = sa.or_(RepairJob.lease_expires_at < now, RepairJob.lease_expires_at.is_(None))
    rows = session.execute(
        sa.select(
            RepairJob.id, RepairJob.status, RepairJob.lease_token, RepairJob.lease_owner,
            RepairJob.heartbeat_at, RepairJob.attempts, RepairJob.max_attempts,
        )
        .where(RepairJob.status.in_(sorted(LEASED_STATUSES)), expired)
        .order_by(RepairJob.lease_expires_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()  # fmt: skip
    for row in rows:
        # Fenced on the token we saw: a worker that renewed meanwhile keeps its job.
        same_lease = (
            RepairJob.lease_token.is_(None)
            if row.lease_token is None
            else RepairJob.lease_token == row.lease_token
        )
        fence = sa.and_(same_lease, expired)
        drop: dict[str, Any] = {
            "lease_token": None, "lease_expires_at": None, "eta_seconds": None, "updated_at": now,
        }  # fmt: skip
        seen = frozenset({row.status})
        if row.status == JobStatus.cancelling:
            ended = {**drop, "finished_at": now}
            if transition(
                session, row.id, to=JobStatus.cancelled, from_=seen, where=fence, values=ended
            ):
                report.cancelled.append(row.id)
        elif row.attempts >= row.max_attempts:
            error = (
                f"gave up after {row.attempts} of {row.max_attempts} attempts: the worker "
                f"running the last one ({row.lease_owner}) stopped renewing its lease "
                f"(last heartbeat {_iso(row.heartbeat_at)}); it was killed, ran out of "
                "memory, or its machine was lost"
            )
            values = {**drop, "finished_at": now, "error": error, "error_type": "WorkerLost"}
            if transition(
                session, row.id, to=JobStatus.failed, from_=seen, where=fence, values=values
            ):
                report.failed.append(row.id)
        elif transition(session, row.id, to=JobStatus.queued, from_=seen, where=fence, values=drop):
            report.requeued.append(row.id)


def _stale_queued(
    session: Session, now: datetime, after_seconds: float, report: SweepReport
) -> None:
    rows = session.execute(
        sa.select(
            RepairJob.id, RepairJob.created_at, RepairJob.updated_at, RepairJob.version,
            RepairJob.attempts, RepairJob.max_attempts,
        )
        .where(
            RepairJob.status == JobStatus.queued,
            RepairJob.updated_at < now - timedelta(seconds=after_seconds),
        )
        .order_by(RepairJob.updated_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()  # fmt: skip
    for row in rows:
        unchanged = RepairJob.version == row.version
        if row.attempts >= row.max_attempts:
            values = {
                "finished_at": now, "updated_at": now, "error_type": "AttemptsExhausted",
                "error": f"all {row.max_attempts} attempts were used before it could finish",
            }  # fmt: skip
            queued = frozenset({JobStatus.queued})
            if transition(
                session, row.id, to=JobStatus.failed, from_=queued, where=unchanged, values=values
            ):
                report.failed.append(row.id)
            continue
        # Wait at least as long as the job had waited when last touched: 2, 4, 8 min ...
        waited_before = row.updated_at - row.created_at
        if now - row.updated_at < max(timedelta(seconds=after_seconds), waited_before):
            continue
        touched = session.execute(
            sa.update(RepairJob)
            .where(RepairJob.id == row.id, RepairJob.status == JobStatus.queued, unchanged)
            .values(updated_at=now, version=RepairJob.version + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(touched, "rowcount", 0):
            report.resent.append(row.id)


def _labels_overdue(
    session: Session, now: datetime, wait_seconds: float, report: SweepReport
) -> None:
    waiting = JobStatus.awaiting_labels
    rows = session.execute(
        sa.select(RepairJob.id, RepairJob.labels_requested_at, RepairJob.version)
        .where(
            RepairJob.status == waiting,
            RepairJob.labels_requested_at < now - timedelta(seconds=wait_seconds),
        )
        .order_by(RepairJob.labels_requested_at)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        error = (
            f"no labels came for the picked failures within {wait_seconds:.0f} s "
            f"(worker.labels_wait_seconds; asked at {_iso(row.labels_requested_at)})"
        )
        values = {
            "finished_at": now, "updated_at": now, "error": error, "error_type": "LabelsTimeout",
        }  # fmt: skip
        if transition(
            session, row.id, to=JobStatus.cancelled, from_=frozenset({waiting}),
            where=RepairJob.version == row.version, values=values,
        ):  # fmt: skip
            report.cancelled.append(row.id)


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "never"


class Sweeper:
    """Runs `sweep` when called; keeps no database connection between calls, because the
    worker forks job processes from the process it runs in."""

    def __init__(self, settings: Settings, worker_name: str | None = None) -> None:
        self._settings = settings
        self._engine: Engine | None = None
        self._queue: CeleryJobQueue | None = None
        self._worker_name = worker_name
        self._started_at = utcnow()

    def __call__(self) -> None:
        if self._engine is None:
            self._engine = make_engine(self._settings.database.url)
            self._queue = CeleryJobQueue(self._settings.broker)
        assert self._queue is not None
        sessions = make_session_factory(self._engine)
        try:
            if self._worker_name is not None:
                record_heartbeat(sessions, self._worker_name, started_at=self._started_at)
            sweep(sessions, self._queue, self._settings.worker)
        except Exception:
            log.warning("sweeper: sweep failed; trying again later", exc_info=True)
        finally:
            self._engine.dispose()

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
        if self._engine is not None:
            self._engine.dispose()


class SweeperStep(bootsteps.StartStopStep):  # type: ignore[misc]
    """Sweeps on the worker's own timer: in the main process's event loop, not in a
    thread. A thread would be a hazard here: the worker forks a fresh job process after
    every job, and a fork while another thread holds a lock (an import, the logging
    lock) leaves the child deadlocked."""

    label = "repair sweeper"
    requires = ("celery.worker.components:Timer",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.sweeper: Sweeper | None = None
        self.timers: list[Any] = []

    def start(self, parent: Any) -> None:
        settings = parent.app.repair_settings
        self.sweeper = Sweeper(settings, worker_name=str(parent.hostname))
        self.timers = [
            parent.timer.call_after(1.0, self.sweeper),  # right away, then periodically
            parent.timer.call_repeatedly(settings.worker.sweep_seconds, self.sweeper),
        ]

    def stop(self, parent: Any) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers = []
        if self.sweeper is not None:
            self.sweeper.close()
            self.sweeper = None

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
