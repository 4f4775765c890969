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

import dataclasses
import enum
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
    attempt: int  # 1 for the first attempt, 2 after one failed attempt, ...
    expires_at: datetime
    progress_at_claim: float  # percent the job had reached before this attempt
    # Claims of the job so far, this one included (attempts + handoffs): grows by one with
    # every claim, so it names this run's work directory and journal lines.
    run: int = 0


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
    attempts, handoffs, progress = session.execute(
        sa.select(RepairJob.attempts, RepairJob.handoffs, RepairJob.progress).where(
            RepairJob.id == job_id, RepairJob.lease_token == token
        )
    ).one()
    session.commit()
    run = int(attempts) + int(handoffs)
    return Lease(job_id, token, owner, int(attempts), expires, float(progress), run)


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
    return dataclasses.replace(lease, expires_at=expires)


def update_fenced(
    session: Session,
    lease: Lease,
    values: dict[str, Any],
    *,
    where: sa.ColumnElement[bool] | None = None,
) -> bool:
    """UPDATE the job's live columns while the lease is ours (and `where` holds); the
    caller commits."""
    stmt = (
        sa.update(RepairJob)
        .where(
            RepairJob.id == lease.job_id,
            RepairJob.lease_token == lease.token,
            RepairJob.status.in_(sorted(LEASED_STATUSES)),
        )
        .values(version=RepairJob.version + 1, **values)
        .execution_options(synchronize_session=False)
    )
    result = session.execute(stmt if where is None else stmt.where(where))
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


class Handoff(enum.StrEnum):
    """How a handoff ended."""

    queued = "queued"  # back in the queue, the attempt refunded
    exhausted = "exhausted"  # past `max_handoffs`: the job failed
    lost = "lost"  # the job is no longer this lease's


def hand_off(
    session: Session,
    lease: Lease,
    *,
    why: str,
    max_handoffs: int,
    exhausted_error: tuple[str, str],
    now: datetime | None = None,
) -> Handoff:
    """Give the job back to the queue without spending an attempt (the run was ended by
    infrastructure, not by the job): `attempts - 1`, `handoffs + 1`, lease dropped at once
    so the next worker need not wait for it to expire. Past `max_handoffs` the job fails
    with `exhausted_error` (error class, message) instead. Commits.

    Also refunds a run the sweeper re-queued meanwhile (its lease ran out while the
    database was unreachable): the row is queued and no claim came after this one
    (`attempts` unchanged), so the attempt is still this run's."""
    now = now or utcnow()
    handoffs = session.scalar(
        sa.select(RepairJob.handoffs).where(
            RepairJob.id == lease.job_id, RepairJob.attempts == lease.attempt
        )
    )
    if handoffs is None:
        session.rollback()
        return Handoff.lost
    if handoffs >= max_handoffs:
        error_type, message = exhausted_error
        values = {"error_type": error_type, "error": f"{message} ({why})"}
        moved = finish(session, lease, JobStatus.failed, values, now=now)
        session.commit()
        return Handoff.exhausted if moved else Handoff.lost
    refund = {
        "attempts": RepairJob.attempts - 1, "handoffs": RepairJob.handoffs + 1,
        "lease_token": None, "lease_expires_at": None, "eta_seconds": None, "updated_at": now,
    }  # fmt: skip
    same_run = RepairJob.attempts == lease.attempt
    moved = transition(
        session, lease.job_id, to=JobStatus.queued, from_=frozenset({JobStatus.running}),
        where=sa.and_(same_run, RepairJob.lease_token == lease.token), values=refund,
    )  # fmt: skip
    if not moved:
        result = session.execute(
            sa.update(RepairJob)
            .where(
                RepairJob.id == lease.job_id, same_run,
                RepairJob.status == JobStatus.queued, RepairJob.lease_token.is_(None),
            )
            .values(version=RepairJob.version + 1, **refund)
            .execution_options(synchronize_session=False)
        )  # fmt: skip
        moved = bool(getattr(result, "rowcount", 0))
    session.commit()
    return Handoff.queued if moved else Handoff.lost
