"""Deleting what an owner stored: datasets, models, failure batches and finished jobs.

A delete takes with it what exists only through the row: a dataset its models, a model
its failure batches and finished repair jobs, a job its genotype and metric rows, result
files and work directory. It is refused with 409 `in_use`, naming the job, while an active
(queued, running, cancelling) job uses any of them.

Race-safe: the check and the deletes run in one transaction under the owner lock
(`api.services.quotas.lock_owner`), which job creation and upload commits take too, so a
job created concurrently either exists before the check (and the delete is refused) or
is created after the delete committed (and finds its inputs gone: 404). Files are removed
only after the rows are committed; a process that dies in between leaves files without a
row, which the upkeep sweep removes (docs/upkeep.md). The owner's quota is freed with the
rows, since it is computed from them.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.db.jobs import ACTIVE_STATUSES
from api.db.models import (
    RESULT_KEY_COLUMNS,
    Dataset,
    FailureBatch,
    Genotype,
    Metric,
    Model,
    RepairJob,
)
from api.errors import ConflictError
from api.services.common import get_owned
from api.services.failures import get_failure_batch
from api.services.quotas import lock_owner
from api.storage import ArtifactStore, job_folder_key

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class Doomed:
    """The rows one delete removes (ids by kind), gathered from the row asked for."""

    datasets: list[uuid.UUID] = field(default_factory=list)
    models: list[uuid.UUID] = field(default_factory=list)
    batches: list[uuid.UUID] = field(default_factory=list)
    jobs: list[uuid.UUID] = field(default_factory=list)


def _ids(
    session: Session, column: InstrumentedAttribute[T], *where: sa.ColumnElement[bool]
) -> list[T]:
    return list(session.scalars(sa.select(column).where(*where)))


def _dependents(session: Session, owner_id: uuid.UUID, doomed: Doomed) -> None:
    """Add the rows that exist only through the doomed ones."""
    mine = [RepairJob.owner_id == owner_id]
    if doomed.datasets:
        doomed.models += _ids(
            session, Model.id, Model.owner_id == owner_id, Model.dataset_id.in_(doomed.datasets)
        )
        # Transfers trained on a doomed dataset exist only through it, as jobs do through
        # their model.
        doomed.jobs += _ids(session, RepairJob.id, *mine, RepairJob.dataset_id.in_(doomed.datasets))
    if doomed.models:
        doomed.batches += _ids(
            session, FailureBatch.id, FailureBatch.owner_id == owner_id,
            FailureBatch.model_id.in_(doomed.models),
        )  # fmt: skip
        doomed.jobs += _ids(session, RepairJob.id, *mine, RepairJob.model_id.in_(doomed.models))
    doomed.jobs = list(dict.fromkeys(doomed.jobs))  # a transfer may be doomed twice


def _refuse_if_in_use(
    session: Session, owner_id: uuid.UUID, doomed: Doomed, what: str, asked: set[uuid.UUID]
) -> None:
    """409 naming the first active job that uses a doomed row (or is one of `asked`, the
    jobs the delete was asked for)."""
    models, batches = set(doomed.models), {str(b) for b in doomed.batches}
    jobs, datasets = set(doomed.jobs), set(doomed.datasets)
    active = session.execute(
        sa.select(
            RepairJob.id, RepairJob.status, RepairJob.model_id, RepairJob.failure_batch_ids,
            RepairJob.dataset_id,
        )
        .where(RepairJob.owner_id == owner_id, RepairJob.status.in_(sorted(ACTIVE_STATUSES)))
        .order_by(RepairJob.created_at, RepairJob.id)
    ).all()  # fmt: skip
    for row in active:
        if (
            row.id in jobs
            or row.model_id in models
            or row.dataset_id in datasets
            or batches & set(row.failure_batch_ids)
        ):
            user = "it is" if row.id in asked else f"repair job {row.id} uses it, which is"
            raise ConflictError(
                f"{what} cannot be deleted: {user} {row.status.value}; cancel the job or "
                "wait until it has finished, then delete again",
                code="in_use",
                errors=[{"job_id": str(row.id), "status": row.status.value}],
            )


def _files(session: Session, owner_id: uuid.UUID, doomed: Doomed) -> tuple[list[str], list[str]]:
    """(artifact keys, job folder keys) the doomed rows point at."""
    keys: list[str] = []
    for model, ids in ((Dataset, doomed.datasets), (Model, doomed.models),
                       (FailureBatch, doomed.batches)):  # fmt: skip
        if ids:
            keys += _ids(session, model.storage_key, model.id.in_(ids))
    folders: list[str] = []
    if doomed.jobs:
        columns = [getattr(RepairJob, c) for c in RESULT_KEY_COLUMNS]
        rows = session.execute(
            sa.select(RepairJob.id, *columns).where(RepairJob.id.in_(doomed.jobs))
        ).all()
        for job_id, *result_keys in rows:
            keys += [k for k in result_keys if k]
            folders.append(job_folder_key(owner_id, job_id))
    return keys, folders


def _delete_rows(session: Session, doomed: Doomed) -> None:
    # Children first: no reliance on the database's cascades (SQLite needs a pragma).
    if doomed.jobs:
        for child in (Metric, Genotype):
            session.execute(sa.delete(child).where(child.job_id.in_(doomed.jobs)))
    for model, ids in ((RepairJob, doomed.jobs), (FailureBatch, doomed.batches),
                       (Model, doomed.models), (Dataset, doomed.datasets)):  # fmt: skip
        if ids:
            session.execute(
                sa.delete(model)
                .where(model.id.in_(ids))
                .execution_options(synchronize_session=False)
            )


def delete_owned(
    session: Session, store: ArtifactStore, *, owner_id: uuid.UUID, doomed: Doomed, what: str
) -> None:
    """Delete the doomed rows and their dependents, then their files. The caller has
    checked that the row asked for is the owner's (404 otherwise)."""
    lock_owner(session, owner_id)
    asked = set(doomed.jobs)
    try:
        _dependents(session, owner_id, doomed)
        _refuse_if_in_use(session, owner_id, doomed, what, asked)
        keys, folders = _files(session, owner_id, doomed)
        _delete_rows(session, doomed)
    except BaseException:
        session.rollback()
        raise
    session.commit()
    remove_files(store, keys, folders)


def remove_files(store: ArtifactStore, keys: Iterable[str], folders: Iterable[str]) -> None:
    """Best effort: what is left (a crash, a file system error) the upkeep sweep removes."""
    for key in keys:
        try:
            store.delete(key)
        except (OSError, ValueError):
            log.warning("could not remove artifact %s; the upkeep sweep will", key, exc_info=True)
    for folder in folders:
        try:
            store.delete_tree(folder)
        except (OSError, ValueError):
            log.warning("could not remove %s; the upkeep sweep will", folder, exc_info=True)


def delete_dataset(
    session: Session, store: ArtifactStore, *, owner_id: uuid.UUID, dataset_id: uuid.UUID
) -> None:
    get_owned(session, Dataset, owner_id=owner_id, id=dataset_id, what="dataset")
    delete_owned(
        session, store, owner_id=owner_id, doomed=Doomed(datasets=[dataset_id]),
        what=f"dataset {dataset_id} (or a model trained on it)",
    )  # fmt: skip


def delete_model(
    session: Session, store: ArtifactStore, *, owner_id: uuid.UUID, model_id: uuid.UUID
) -> None:
    get_owned(session, Model, owner_id=owner_id, id=model_id, what="model")
    delete_owned(
        session, store, owner_id=owner_id, doomed=Doomed(models=[model_id]),
        what=f"model {model_id}",
    )  # fmt: skip


def delete_failure_batch(
    session: Session,
    store: ArtifactStore,
    *,
    owner_id: uuid.UUID,
    model_id: uuid.UUID,
    batch_id: uuid.UUID,
) -> None:
    get_failure_batch(session, owner_id=owner_id, model_id=model_id, batch_id=batch_id)
    delete_owned(
        session, store, owner_id=owner_id, doomed=Doomed(batches=[batch_id]),
        what=f"failure batch {batch_id}",
    )  # fmt: skip


def delete_repair(
    session: Session, store: ArtifactStore, *, owner_id: uuid.UUID, job_id: uuid.UUID
) -> None:
    """A finished job and everything it kept; 409 `in_use` while it is active."""
    get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")
    delete_owned(
        session, store, owner_id=owner_id, doomed=Doomed(jobs=[job_id]),
        what=f"repair job {job_id}",
    )  # fmt: skip
