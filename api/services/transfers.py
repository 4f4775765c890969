"""Transfer jobs: a succeeded job's genotype retrained on another of the owner's datasets.

A transfer is a repair job row of kind `transfer`, run by the same worker machinery. Its
config holds the searched genotype copied from the source job, so the transfer does not
depend on the source job once it is queued (deleting the source clears `source_job_id`).
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.db.models import JOB_KIND_TRANSFER, Dataset, Genotype, JobStatus, RepairJob
from api.errors import ConflictError, InvalidInputError
from api.queue import JobQueue
from api.schemas.repairs import TransferCreate, check_overrides
from api.services.common import get_owned
from api.services.quotas import check_active_jobs, lock_owner
from api.services.repairs import RepairView, enqueue, request_digest
from repair_core import choices


def create_transfer(
    session: Session,
    *,
    owner_id: uuid.UUID,
    source_job_id: uuid.UUID,
    request: TransferCreate,
    queue: JobQueue,
    max_attempts: int,
    max_active_jobs: int | None = None,
    retry_after_seconds: int = 60,
) -> RepairView:
    """Queue a transfer of `source_job_id`'s genotype to `request.dataset_id`: 404 for a job
    or dataset the owner does not have, 409 while the source job has not succeeded."""
    # The owner lock first, as for a repair: a concurrent delete of the dataset either
    # committed before (404 here) or waits and then sees this job (409 `in_use`).
    lock_owner(session, owner_id)
    try:
        source = get_owned(
            session, RepairJob, owner_id=owner_id, id=source_job_id, what="repair job"
        )
        dataset = get_owned(
            session, Dataset, owner_id=owner_id, id=request.dataset_id, what="dataset"
        )
        genotype = _searched_genotype(session, source)
        if max_active_jobs is not None:
            check_active_jobs(
                session, owner_id=owner_id, limit=max_active_jobs,
                retry_after_seconds=retry_after_seconds,
            )  # fmt: skip
    except Exception:
        session.rollback()
        raise
    profile = str(request.profile or source.config.get("profile") or choices.DEFAULT_PROFILE)
    seed = int(source.config.get("seed", 0))
    config = {
        "profile": profile,
        "overrides": dict(request.overrides),
        "seed": seed,
        "genotype": genotype,
    }
    try:
        # Against the profile the transfer will run (the source's when none is named).
        check_overrides(profile, dict(request.overrides), seed=seed)
    except ValueError as exc:
        session.rollback()
        raise InvalidInputError(str(exc)) from None
    job = RepairJob(
        owner_id=owner_id,
        model_id=source.model_id,
        failure_batch_ids=[],
        config=config,
        kind=JOB_KIND_TRANSFER,
        source_job_id=source.id,
        dataset_id=dataset.id,
        status=JobStatus.queued,
        max_attempts=max_attempts,
        request_sha256=request_digest(request),
    )
    session.add(job)
    session.commit()
    enqueue(queue, job.id)
    return RepairView(job, None, {})


def _searched_genotype(session: Session, source: RepairJob) -> dict[str, object]:
    """The source job's final genotype (its last iteration's); 409 before it succeeded."""
    if source.status != JobStatus.succeeded:
        raise ConflictError(
            f"repair job {source.id} is {source.status.value}; only a succeeded job's "
            "genotype can be transferred",
            code="source_not_succeeded",
        )
    genotype = session.scalars(
        sa.select(Genotype.genotype)
        .where(Genotype.job_id == source.id)
        .order_by(Genotype.iteration.desc())
        .limit(1)
    ).first()
    if genotype is None:
        raise ConflictError(
            f"repair job {source.id} recorded no genotype to transfer", code="no_genotype"
        )
    return dict(genotype)
