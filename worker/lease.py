"""The lease on a repair job: only its holder runs the job, and every write is fenced.

A worker claims a job with one conditional UPDATE (queued -> running, attempts + 1, a
fresh token, an expiry); a second delivery of the same message finds the job running
and does nothing. The holder renews the lease on a heartbeat. Every later write carries
`AND lease_token = :mine`, so a worker that lost its lease (it stalled, the sweeper
handed the job on) can no longer change the row (docs/job-lifecycle.md, "The lease").

Times are the workers' clocks (UTC); they are assumed NTP-synchronised to well within
the lease length.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.db.jobs import LEASED_STATUSES, TERMINAL_STATUSES, transition
from api.db.models import JobStatus, RepairJob, UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Lease:
    job_id: uuid.UUID
    token: uuid.UUID
    owner: str  # "<celery hostname>/<pid>", recorded as lease_owner
    attempt: int  # 1 for the first run, 2 after one takeover, ...
    expires_at: datetime
    progress_at_claim: float  # percent the job had reached before this attempt


def claim(
    session: Session,
    job_id: uuid.UUID,
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> Lease | None:
    """Take the job if it is queued and has attempts left; None (and no write) otherwise.
    Commits."""
    now = now or utcnow()
    token = uuid.uuid4()
    expires = now + timedelta(seconds=lease_seconds)
    moved = transition(
        session,
        job_id,
        to=JobStatus.running,
        from_=frozenset({JobStatus.queued}),
        where=RepairJob.attempts < RepairJob.max_attempts,
        values={
            "attempts": RepairJob.attempts + 1,
            "lease_token": token,
            "lease_owner": owner[:255],
            "lease_expires_at": expires,
            "heartbeat_at": now,
            "started_at": sa.func.coalesce(RepairJob.started_at, sa.literal(now, UTCDateTime())),
            "error": None,
            "error_type": None,
            "updated_at": now,
        },
    )
    if not moved:
        session.rollback()
        return None
    attempts, progress = session.execute(
        sa.select(RepairJob.attempts, RepairJob.progress).where(
            RepairJob.id == job_id, RepairJob.lease_token == token
        )
    ).one()
    session.commit()
    return Lease(job_id, token, owner, int(attempts), expires, float(progress))


def why_not_claimed(session: Session, job_id: uuid.UUID, *, now: datetime | None = None) -> str:
    """A one-line reason a claim found nothing to do, for the log."""
    job = session.get(RepairJob, job_id)
    if job is None:
        return "no such job"
    if job.status in TERMINAL_STATUSES:
        return f"it has {job.status.value} already"
    if job.status in LEASED_STATUSES:
        expires = job.lease_expires_at
        alive = expires is not None and expires > (now or utcnow())
        state = "live" if alive else "expired (the sweeper will re-queue it)"
        return f"it is {job.status.value} under the lease of {job.lease_owner}, {state}"
    if job.attempts >= job.max_attempts:
        return f"its {job.attempts} of {job.max_attempts} attempts are used up"
    return f"it is {job.status.value}"


def renew(
    session: Session, lease: Lease, *, lease_seconds: float, now: datetime | None = None
) -> Lease | None:
    """Extend the lease; None when it is no longer ours (the job was handed on or ended).
    Commits."""
    now = now or utcnow()
    expires = now + timedelta(seconds=lease_seconds)
    if not update_fenced(session, lease, {"lease_expires_at": expires, "heartbeat_at": now}):
        session.rollback()
        return None
    session.commit()
    return Lease(
        lease.job_id, lease.token, lease.owner, lease.attempt, expires, lease.progress_at_claim
    )


def update_fenced(session: Session, lease: Lease, values: dict[str, Any]) -> bool:
    """UPDATE the job's live columns while the lease is ours; the caller commits."""
    result = session.execute(
        sa.update(RepairJob)
        .where(
            RepairJob.id == lease.job_id,
            RepairJob.lease_token == lease.token,
            RepairJob.status.in_(sorted(LEASED_STATUSES)),
        )
        .values(version=RepairJob.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def finish(
    session: Session,
    lease: Lease,
    to: JobStatus,
    values: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> bool:
    """Move the job to a terminal status and drop the lease, if the lease is still ours.
    The caller commits (so result rows can join the same transaction)."""
    now = now or utcnow()
    return transition(
        session,
        lease.job_id,
        to=to,
        from_=LEASED_STATUSES,
        where=RepairJob.lease_token == lease.token,
        values={
            "lease_token": None,
            "lease_expires_at": None,
            "eta_seconds": None,
            "finished_at": now,
            "updated_at": now,
            **(values or {}),
        },
    )


def release(session: Session, lease: Lease, *, now: datetime | None = None) -> bool:
    """Hand a running job back to the queue (keeping its attempt count), e.g. when the
    database or broker failed under it. Commits."""
    now = now or utcnow()
    moved = transition(
        session,
        lease.job_id,
        to=JobStatus.queued,
        from_=frozenset({JobStatus.running}),
        where=RepairJob.lease_token == lease.token,
        values={"lease_token": None, "lease_expires_at": None, "updated_at": now},
    )
    session.commit()
    return moved
