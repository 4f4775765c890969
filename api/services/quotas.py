"""Per-owner abuse limits: stored bytes and active repair jobs.

See docs/upload-safety.md (fault 12), docs/job-lifecycle.md (fault 33) and
docs/upkeep.md ("Quota").

The storage quota counts everything the owner keeps: uploads, what their jobs keep
(`RepairJob.stored_bytes`) and the bytes of uploads still in flight
(`StorageReservation` rows, so two uploads cannot together pass the quota before either
finishes). Every check that guards a write runs inside the writing transaction after
`lock_owner`, so two concurrent requests of one owner (in any API process) are
serialised on the owner row and cannot both pass a limit only one of them fits under.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.db.jobs import ACTIVE_STATUSES
from api.db.models import (
    Dataset,
    FailureBatch,
    Model,
    Owner,
    RepairJob,
    StorageReservation,
    utcnow,
)
from api.errors import QuotaExceededError, TooManyRequestsError


def lock_owner(session: Session, owner_id: uuid.UUID) -> None:
    """Lock the owner row until the transaction ends.

    `FOR NO KEY UPDATE` (not plain `FOR UPDATE`): it conflicts with itself but not with the
    key-share locks that inserts of the owner's other rows take for their foreign key, so
    a worker writing results is never held up by it.

    SQLite has no row locks: a no-op write takes the database's write lock instead, so the
    reads that follow in this transaction see the latest commits and no other writer
    (another API process included) commits before this transaction ends.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.update(Owner).where(Owner.id == owner_id).values(name=Owner.name))
        return
    session.execute(sa.select(Owner.id).where(Owner.id == owner_id).with_for_update(key_share=True))


def _sum(
    session: Session, column: InstrumentedAttribute[int], *where: sa.ColumnElement[bool]
) -> int:
    return int(
        session.scalar(sa.select(sa.func.coalesce(sa.func.sum(column), 0)).where(*where)) or 0
    )


def storage_used(
    session: Session,
    owner_id: uuid.UUID,
    *,
    exclude_reservation: uuid.UUID | None = None,
    now: datetime | None = None,
) -> int:
    """Bytes the owner keeps or has in flight: uploads (as received), what their jobs keep,
    and live reservations of uploads in flight (but `exclude_reservation`, the caller's)."""
    total = 0
    for model in (Dataset, Model, FailureBatch):
        total += _sum(session, model.size_bytes, model.owner_id == owner_id)
    total += _sum(session, RepairJob.stored_bytes, RepairJob.owner_id == owner_id)
    live = [
        StorageReservation.owner_id == owner_id,
        StorageReservation.expires_at > (now or utcnow()),
    ]
    if exclude_reservation is not None:
        live.append(StorageReservation.id != exclude_reservation)
    return total + _sum(session, StorageReservation.bytes, *live)


def check_storage(
    session: Session,
    *,
    owner_id: uuid.UUID,
    incoming: int,
    limit: int,
    exclude_reservation: uuid.UUID | None = None,
) -> None:
    """Raise 413 `quota_exceeded` if `incoming` more bytes would take the owner past `limit`."""
    used = storage_used(session, owner_id, exclude_reservation=exclude_reservation)
    if used + incoming > limit:
        raise QuotaExceededError(
            f"storage quota exceeded: this upload of {incoming} bytes would bring the owner's "
            f"stored and in-flight bytes (uploads, repair results, uploads in progress) to "
            f"{used + incoming} bytes, over the quota of {limit} bytes",
            errors=[{"limit": "storage_bytes", "value": limit, "used": used}],
        )


def reserve_storage(
    session: Session,
    *,
    owner_id: uuid.UUID,
    reservation_id: uuid.UUID | None,
    total_bytes: int,
    limit: int,
    ttl_seconds: float,
    headroom_bytes: int = 0,
) -> tuple[uuid.UUID, int]:
    """Hold `total_bytes` of an upload in flight against the quota, plus up to
    `headroom_bytes` more where the quota leaves room (so a growing upload need not come
    back for every chunk), creating or resizing the reservation `reservation_id`, for
    `ttl_seconds` from now; commits. Returns (reservation id, bytes held). 413
    `quota_exceeded` (and the reservation left as it was) when `total_bytes` do not fit."""
    lock_owner(session, owner_id)
    try:
        used = storage_used(session, owner_id, exclude_reservation=reservation_id)
        check_storage(
            session, owner_id=owner_id, incoming=total_bytes, limit=limit,
            exclude_reservation=reservation_id,
        )  # fmt: skip
    except QuotaExceededError:
        session.rollback()
        raise
    held = min(total_bytes + headroom_bytes, limit - used)
    expires_at = utcnow() + timedelta(seconds=ttl_seconds)
    row = session.get(StorageReservation, reservation_id) if reservation_id else None
    if row is None:
        row = StorageReservation(
            id=reservation_id or uuid.uuid4(), owner_id=owner_id, bytes=held,
            expires_at=expires_at,
        )  # fmt: skip
        session.add(row)
    else:
        row.bytes, row.expires_at = held, expires_at
    session.commit()
    return row.id, held


def release_storage(session: Session, reservation_id: uuid.UUID) -> None:
    """Drop a reservation (its upload failed, or its row now counts the bytes)."""
    session.execute(sa.delete(StorageReservation).where(StorageReservation.id == reservation_id))


def sweep_reservations(session: Session, *, now: datetime | None = None) -> int:
    """Delete reservations past their expiry (left by processes that died); commits."""
    result = session.execute(
        sa.delete(StorageReservation).where(StorageReservation.expires_at <= (now or utcnow()))
    )
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


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
