"""Job states: every set of statuses, the table of allowed moves, and the conditional
UPDATE that applies it. `JobStatus` itself is the column's type, in `api.db.models`.

`UPDATE ... WHERE id = :id AND status IN (:allowed_from)` touches 0 rows when someone
else moved the job first, so two updaters can never both win; callers re-read and
decide. The API (cancel, quotas), the worker (claim, finish) and the sweeper share
this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.db.models import JobStatus, RepairJob

S = JobStatus
ALLOWED_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    # queued -> failed: the sweeper gives up on a job that can never start.
    S.queued: frozenset({S.running, S.cancelled, S.failed}),
    # running -> queued: a lease expired and the sweeper hands the job to another worker.
    # running -> awaiting_labels: selection picked unlabeled failures; the worker lets go.
    S.running: frozenset({S.queued, S.cancelling, S.awaiting_labels, S.succeeded, S.failed}),
    # awaiting_labels -> queued: the labels came; -> cancelled: the owner, or the wait
    # ran out (the sweeper).
    S.awaiting_labels: frozenset({S.queued, S.cancelled}),
    # A job may finish (or fail) before it notices the cancel request.
    S.cancelling: frozenset({S.cancelled, S.succeeded, S.failed}),
    S.succeeded: frozenset(),
    S.failed: frozenset(),
    S.cancelled: frozenset(),
}

# Finished: no move leads out of these.
TERMINAL_STATUSES = frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if not targets)
# Not finished yet: what counts against an owner's active-jobs quota (a job awaiting
# labels included: it holds its work directory and will run again).
ACTIVE_STATUSES = frozenset(JobStatus) - TERMINAL_STATUSES
# Held by a worker's lease: someone is working on the job (the sweeper re-queues it
# when the lease expires).
LEASED_STATUSES = frozenset({S.running, S.cancelling})
# Cancelled at once, with no worker to tell.
CANCEL_AT_ONCE_STATUSES = frozenset({S.queued, S.awaiting_labels})
# A cancel was asked for: asking again changes nothing.
CANCEL_REQUESTED_STATUSES = frozenset({S.cancelling, S.cancelled})


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    return frozenset(s for s, targets in ALLOWED_TRANSITIONS.items() if target in targets)


def transition(
    session: Session,
    job_id: uuid.UUID,
    *,
    to: JobStatus,
    from_: frozenset[JobStatus] | None = None,
    where: sa.ColumnElement[bool] | None = None,
    values: Mapping[str, Any] | None = None,
) -> bool:
    """Move `job_id` to `to` if its status is one of `from_` (default: every legal
    source). Extra `where` fences the update (e.g. on the lease token). Returns whether
    a row changed; the caller commits."""
    allowed = sources_of(to) if from_ is None else from_ & sources_of(to)
    if not allowed:
        return False
    stmt = (
        sa.update(RepairJob)
        .where(RepairJob.id == job_id, RepairJob.status.in_(sorted(allowed)))
        .values(status=to, version=RepairJob.version + 1, **dict(values or {}))
        .execution_options(synchronize_session=False)
    )
    if where is not None:
        stmt = stmt.where(where)
    result = session.execute(stmt)
    return bool(getattr(result, "rowcount", 0))
