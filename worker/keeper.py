"""The job keeper: a thread beside the running pipeline that talks to the database.

It renews the lease on the heartbeat, writes the latest progress a few times a second at
most, and looks for a cancel request about once a second. The pipeline only calls
`report(progress)` (cheap: it stores the latest values) and checks `cancel_token` at step
boundaries, so a slow or briefly unreachable database never stalls the GPU, and a
database outage shorter than the lease costs nothing.

The keeper stops the pipeline (through the cancel token) when the user cancels, and
when the lease is lost: the row is no longer ours, or it could not be renewed before it
ran out, after which another worker may take the job over.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from api.db.jobs import LEASED_STATUSES
from api.db.models import JobStatus, RepairJob
from api.settings import WorkerSettings
from repair_core.progress import CancelToken, Progress
from worker import shutdown
from worker.journal import Journal
from worker.lease import Lease, renew, update_fenced, utcnow

log = logging.getLogger(__name__)

# ETA needs this much progress (percent) and time (s) in this attempt to mean anything.
_ETA_MIN_PERCENT = 1.0
_ETA_MIN_SECONDS = 1.0


class JobKeeper:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        lease: Lease,
        settings: WorkerSettings,
        journal: Journal,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = session_factory
        self.lease = lease
        self._settings = settings
        self._journal = journal
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"job-keeper-{lease.job_id}", daemon=True
        )
        self._started_at: tuple[float, float] | None = None  # (clock, percent) of 1st report
        self._stages_seen: set[str] = set()
        self.lost = False  # the lease is gone: stop and write nothing more
        # Lost only because it could not be renewed in time (the database was unreachable):
        # nobody else holds the job, so the run may still hand it on.
        self.renewal_failed = False
        self.cancel_requested = False
        self.progress_writes = 0
        self.cancel_token = CancelToken(poll=lambda: self.stop_requested, poll_interval=0.0)

    @property
    def stop_requested(self) -> bool:
        return self.lost or self.cancel_requested or shutdown.requested()

    @property
    def handoff_reason(self) -> str | None:
        """Why infrastructure ended this run (so it spends no attempt), if it did."""
        if self.renewal_failed:
            return "its lease could not be renewed: the database was unreachable"
        if shutdown.requested() and not self.lost:
            return "its worker was stopped (a deploy, or the broker connection was lost)"
        return None

    # -- pipeline side ----------------------------------------------------------------

    def report(self, progress: Progress) -> None:
        """The pipeline's progress callback: remember the latest values for the thread."""
        now = self._clock()
        percent = float(progress.metrics.get("overall_percent", 0.0))
        percent = min(100.0, max(percent, self.lease.progress_at_claim))
        if self._started_at is None:
            self._started_at = (now, percent)
        iteration = progress.metrics.get("iteration")
        stage_key = progress.stage if iteration is None else f"{progress.stage}@{int(iteration)}"
        if progress.step > 0 and stage_key not in self._stages_seen:
            # Where this attempt started the stage: past step 1 means it resumed.
            self._stages_seen.add(stage_key)
            self._journal.write(
                "stage", stage=stage_key, first_step=progress.step, total=progress.total
            )
        values = {
            "stage": progress.stage,
            "progress": percent,
            "step": int(progress.step),
            "total": int(progress.total),
            "metrics": {
                k: float(v)
                for k, v in progress.metrics.items()
                if isinstance(v, int | float) and math.isfinite(v)
            },
            "eta_seconds": self._eta(now, percent),
        }
        with self._lock:
            self._pending = values

    def _eta(self, now: float, percent: float) -> float | None:
        assert self._started_at is not None
        t0, p0 = self._started_at
        done, elapsed = percent - p0, now - t0
        if done < _ETA_MIN_PERCENT or elapsed < _ETA_MIN_SECONDS or percent >= 100.0:
            return None
        return round((100.0 - percent) * elapsed / done, 1)

    # -- thread side ------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write the last progress (unless the lease is gone)."""
        self._stop.set()
        self._thread.join()
        if not self.lost:
            self._flush_progress()

    def __enter__(self) -> JobKeeper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        s = self._settings
        last_write = last_poll = last_renew = self._clock()
        tick = max(0.05, min(s.progress_min_interval_seconds, s.cancel_poll_seconds))
        while not self._stop.wait(tick) and not self.lost:
            now = self._clock()
            try:
                if now - last_write >= s.progress_min_interval_seconds:
                    last_write = now
                    self._flush_progress()
                if now - last_poll >= s.cancel_poll_seconds:
                    last_poll = now
                    self._poll_status()
                if now - last_renew >= s.heartbeat_seconds:
                    last_renew = now
                    self._renew()
            except Exception:
                # Transient or not, the next tick tries again; the lease bounds how long.
                log.warning("job %s: keeper write failed", self.lease.job_id, exc_info=True)
            self._check_expiry()

    def _flush_progress(self) -> None:
        with self._lock:
            values, self._pending = self._pending, None
        if values is None:
            return
        try:
            with self._sessions() as session:
                if update_fenced(session, self.lease, {**values, "updated_at": utcnow()}):
                    session.commit()
                    self.progress_writes += 1
                else:
                    self._lose("the job row no longer carries this worker's lease")
        except Exception:
            with self._lock:  # keep the values for the next try unless newer ones came
                if self._pending is None:
                    self._pending = values
            raise

    def _poll_status(self) -> None:
        with self._sessions() as session:
            row = session.execute(
                sa.select(RepairJob.status, RepairJob.lease_token).where(
                    RepairJob.id == self.lease.job_id
                )
            ).first()
        if row is None or row.lease_token != self.lease.token:
            self._lose("the lease was handed on")
        elif row.status == JobStatus.cancelling and not self.cancel_requested:
            log.info("job %s: cancel requested", self.lease.job_id)
            self.cancel_requested = True
        elif row.status not in LEASED_STATUSES:
            self._lose(f"the job became {row.status.value}")

    def _renew(self) -> None:
        # Journal first: it never shows less lease than the database holds.
        now = utcnow()
        lease_seconds = self._settings.lease_seconds
        self._journal.write("renewing", lease_expires_at=now + timedelta(seconds=lease_seconds))
        with self._sessions() as session:
            renewed = renew(session, self.lease, lease_seconds=lease_seconds, now=now)
        if renewed is None:
            self._lose("the lease could not be renewed: the job row is no longer ours")
        else:
            self.lease = renewed

    def _check_expiry(self) -> None:
        # Unable to renew in time (database unreachable): past expiry another worker may
        # take the job, so stop a little before it, one heartbeat early at most.
        margin = min(self._settings.heartbeat_seconds, self._settings.lease_seconds / 4)
        if not self.lost and utcnow() >= self.lease.expires_at - timedelta(seconds=margin):
            self._lose("the lease is about to expire without a successful renewal")
            self.renewal_failed = True

    def _lose(self, why: str) -> None:
        if not self.lost:
            log.warning("job %s: lease lost (%s); stopping", self.lease.job_id, why)
            self.lost = True
