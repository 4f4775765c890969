"""Per-owner abuse limits: stored bytes and active repair jobs.

See docs/upload-safety.md (fault 12) and docs/job-lifecycle.md (fault 33).

Both checks that guard a write run inside the writing transaction after `lock_owner`, so
two concurrent requests of one owner are serialised on the owner row and cannot both
pass a limit that only one of them fits under. SQLite ignores the lock, but it serialises
writers anyway.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.db.jobs import ACTIVE_STATUSES
from api.db.models import Dataset, FailureBatch, Model, Owner, RepairJob
from api.errors import QuotaExceededError, TooManyRequestsError


def lock_owner(session: Session, owner_id: uuid.UUID) -> None:
    """Lock the owner row until the transaction ends.

    `FOR NO KEY UPDATE` (not plain `FOR UPDATE`): it conflicts with itself but not with the
    key-share locks that inserts of the owner's other rows take for their foreign key, so
    a worker writing results is never held up by it.
    """
    session.execute(sa.select(Owner.id).where(Owner.id == owner_id).with_for_update(key_share=True))


def storage_used(session: Session, owner_id: uuid.UUID) -> int:
    """Bytes of the owner's stored uploads, counted as received."""
    total = 0
    for model in (Dataset, Model, FailureBatch):
        total += int(
            session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(model.size_bytes), 0)).where(
                    model.owner_id == owner_id
                )
            )
            or 0
        )
    return total


def check_storage(session: Session, *, owner_id: uuid.UUID, incoming: int, limit: int) -> None:
    """Raise 413 `quota_exceeded` if `incoming` more bytes would take the owner past `limit`."""
    used = storage_used(session, owner_id)
    if used + incoming > limit:
        raise QuotaExceededError(
            f"storage quota exceeded: this upload of {incoming} bytes would bring the owner's "
            f"stored uploads to {used + incoming} bytes, over the quota of {limit} bytes",
            errors=[{"limit": "storage_bytes", "value": limit, "used": used}],
        )


def active_jobs(session: Session, owner_id: uuid.UUID) -> int:
    count = session.scalar(
        sa.select(sa.func.count())
        .select_from(RepairJob)
        .where(RepairJob.owner_id == owner_id, RepairJob.status.in_(ACTIVE_STATUSES))
    )
    return int(count or 0)


def check_active_jobs(
    session: Session, *, owner_id: uuid.UUID, limit: int, retry_after_seconds: int
) -> None:
    """Raise 429 `too_many_jobs` if the owner already has `limit` active jobs.

    Call it after `lock_owner` in the transaction that inserts the job.
    """
    count = active_jobs(session, owner_id)
    if count >= limit:
        raise TooManyRequestsError(
            f"too many active repair jobs: the owner has {count} queued, running or "
            f"cancelling jobs and the limit is {limit}; retry when one has finished",
            code="too_many_jobs",
            errors=[{"limit": "active_jobs", "value": limit}],
            headers={"Retry-After": str(retry_after_seconds)},
        )
