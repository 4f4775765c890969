"""Label on demand: the picks a waiting job offers, and the owner's labels for them.

A job `awaiting_labels` holds the picks of its current round (`RepairJob.picks`: id,
file, the model's guess) and their archive. The labels upload is checked like a failure
batch's manifest (`repair_core.label_rows`: unknown id, label out of range, duplicates,
each row named); a bad file changes nothing. Good labels are merged into the job, which
goes back to `queued` in one conditional UPDATE, and its message is sent after the
commit. See docs/label-on-demand.md.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from api.db.jobs import transition
from api.db.models import Dataset, JobStatus, Model, RepairJob
from api.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    UnsupportedMediaTypeError,
)
from api.queue import JobQueue
from api.services.common import get_owned
from api.storage import ArtifactStore
from repair_core.errors import RepairInputError
from repair_core.label_rows import SHOWN, parse_label_rows

log = logging.getLogger(__name__)

LABEL_MEDIA_TYPES = ("text/csv", "application/json")
# Columns of the CSV template: the owner fills in `label` (a class index or name).
TEMPLATE_COLUMNS = ("id", "file", "label", "predicted", "predicted_name", "confidence")


def _waiting(session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID) -> RepairJob:
    job = get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")
    if job.status != JobStatus.awaiting_labels:
        raise ConflictError(
            f"repair job {job_id} is {job.status.value}; picks are offered for labelling "
            "only while it is awaiting_labels",
            code="not_awaiting_labels",
        )
    return job


def picks_of(
    session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID
) -> tuple[RepairJob, list[dict[str, Any]]]:
    job = _waiting(session, owner_id=owner_id, job_id=job_id)
    return job, list(job.picks)


def picks_archive(
    session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID, store: ArtifactStore
) -> str:
    """The stored key of the picks archive of a job awaiting labels."""
    job = _waiting(session, owner_id=owner_id, job_id=job_id)
    if not job.picks_key or not store.exists(job.picks_key):
        raise NotFoundError(f"the picks archive of repair job {job_id} is missing")
    return job.picks_key


def template_csv(picks: list[dict[str, Any]]) -> str:
    """A CSV with one row per pick and an empty `label` column, the model's guess beside."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TEMPLATE_COLUMNS)
    for pick in picks:
        writer.writerow([pick["id"], pick["file"], "", pick["predicted"],
                         pick["predicted_name"], pick["confidence"]])  # fmt: skip
    return out.getvalue()


def submit_labels(
    session: Session,
    *,
    owner_id: uuid.UUID,
    job_id: uuid.UUID,
    data: bytes,
    media_type: str,
    queue: JobQueue,
    max_attempts: int,
) -> RepairJob:
    """Check the labels against the waiting round's picks; merge them and queue the job.
    Every problem is a 422 naming the rows; nothing is written then."""
    job = _waiting(session, owner_id=owner_id, job_id=job_id)
    if media_type not in LABEL_MEDIA_TYPES:
        # After the owner check: another owner's job answers 404 whatever is sent.
        raise UnsupportedMediaTypeError(
            f"labels must be sent as {' or '.join(LABEL_MEDIA_TYPES)}, "
            f"not {media_type or 'nothing'}"
        )
    model = get_owned(session, Model, owner_id=owner_id, id=job.model_id, what="model")
    dataset = get_owned(session, Dataset, owner_id=owner_id, id=model.dataset_id, what="dataset")
    name = "labels.csv" if media_type == "text/csv" else "labels.json"
    labels = _checked_labels(name, data, tuple(dataset.class_names), job.picks)
    now = datetime.now(UTC)
    moved = transition(
        session,
        job_id,
        to=JobStatus.queued,
        from_=frozenset({JobStatus.awaiting_labels}),
        where=RepairJob.version == job.version,
        values={
            "labels": {**job.labels, **{str(k): v for k, v in labels.items()}},
            "label_rounds": RepairJob.label_rounds + 1,
            # Each leg of the job gets the full allowance of attempts.
            "max_attempts": RepairJob.attempts + max_attempts,
            "picks": [],
            "labels_requested_at": None,
            "updated_at": now,
        },
    )
    if not moved:
        session.rollback()
        raise ConflictError(
            f"repair job {job_id} changed while its labels were checked (cancelled, or "
            "labels were sent twice); read it again",
            code="job_changed",
        )
    session.commit()
    try:
        queue.enqueue(job_id)
    except Exception:
        log.warning(
            "could not enqueue repair job %s; the sweeper will retry", job_id, exc_info=True
        )
    session.expire_all()
    return get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")


def _checked_labels(
    name: str, data: bytes, class_names: tuple[str, ...], picks: list[dict[str, Any]]
) -> dict[int, int]:
    try:
        rows, problems = parse_label_rows(name, data, class_names, key="id")
    except RepairInputError as e:
        raise InvalidInputError(str(e), code="bad_labels") from e
    asked = {str(p["id"]) for p in picks}
    seen: dict[str, str] = {}
    labels: dict[int, int] = {}
    for row in rows:
        if row.file not in asked:
            problems.append(f"{row.where} ({row.file}): unknown id, not one of this round's picks")
        elif row.file in seen:
            problems.append(f"{row.where} ({row.file}): second label for the id ({seen[row.file]})")
        else:
            seen[row.file] = row.where
            labels[int(row.file)] = row.label
    if problems:
        shown = problems[:SHOWN]
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise InvalidInputError(
            f"{name}: {len(problems)} rows with problems, nothing was changed: "
            f"{'; '.join(shown)}{more}",
            code="bad_labels",
            errors=[{"loc": ["body", name], "message": p} for p in shown],
        )
    if not labels:
        raise InvalidInputError(
            f"{name}: no labels; label at least one of the {len(picks)} picks",
            code="bad_labels",
        )
    return labels
