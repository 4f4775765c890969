"""Repair jobs: create (idempotently), list, get, cancel, and locate their results."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db.jobs import (
    CANCEL_AT_ONCE_STATUSES,
    CANCEL_REQUESTED_STATUSES,
    TERMINAL_STATUSES,
    transition,
)
from api.db.models import (
    CLEAN_DROP_METRIC,
    MODEL_FILE_COLUMNS,
    FailureBatch,
    Genotype,
    JobStatus,
    Metric,
    Model,
    RepairJob,
    export_diff_metric,
    size_metric,
)
from api.errors import ConflictError, InvalidInputError, NotFoundError, TooManyRequestsError
from api.queue import JobQueue
from api.schemas.repairs import RepairCreate
from api.services.common import get_owned
from api.services.quotas import check_active_jobs, lock_owner
from api.storage import ArtifactStore
from repair_core import choices
from repair_core.choices import figure_files

log = logging.getLogger(__name__)

MAX_IDEMPOTENCY_KEY_CHARS = 255


@dataclass(frozen=True)
class RepairView:
    job: RepairJob
    genotype: dict[str, Any] | None
    metrics: dict[str, float]

    @property
    def model_size(self) -> dict[str, dict[str, int]] | None:
        """deployed / repaired -> params and FLOPs per image, from the metric rows."""
        try:
            return {
                side: {what: int(self.metrics[size_metric(role, what)]) for what in _SIZES}
                for side, role in (("deployed", "original"), ("repaired", "repaired"))
            }
        except KeyError:  # not finished, or finished before sizes were counted
            return None

    @property
    def export_max_abs_diff(self) -> dict[str, float]:
        found = {f: self.metrics.get(export_diff_metric(f)) for f in choices.EXPORT_FORMATS}
        return {f: d for f, d in found.items() if d is not None}

    @property
    def clean_accuracy_dropped(self) -> bool | None:
        value = self.metrics.get(CLEAN_DROP_METRIC)
        return None if value is None else value >= 0.5


_SIZES = ("params", "flops")


def request_digest(request: BaseModel) -> str:
    body = request.model_dump(mode="json")
    if "variants" in body and body["variants"] is None:
        del body["variants"]  # a plain request hashes as it did before variants existed
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_repair(
    session: Session,
    *,
    owner_id: uuid.UUID,
    request: RepairCreate,
    idempotency_key: str | None,
    queue: JobQueue,
    max_attempts: int,
    max_active_jobs: int | None = None,
    retry_after_seconds: int = 60,
) -> tuple[RepairView, bool]:
    """Create a queued job and enqueue it; returns (job, created).

    The same `idempotency_key` with the same body returns the first job (created is
    False); with another body it is a 409. The row is committed before the message
    is sent, so the worker always finds it. With `max_active_jobs`, an owner who has that
    many queued/running/cancelling jobs gets a 429 (checked under the owner-row lock, so
    concurrent requests cannot both pass).
    """
    digest = request_digest(request)
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
        replay = _replay(session, owner_id=owner_id, key=idempotency_key, digest=digest)
        if replay is not None:
            return view_of(session, replay), False
    # The owner lock first: a concurrent delete of the model or a batch either committed
    # before (the reads below miss it: 404) or waits until this job exists (and is then
    # refused with 409 `in_use`), so no job ever names a deleted upload.
    lock_owner(session, owner_id)
    try:
        model = get_owned(session, Model, owner_id=owner_id, id=request.model_id, what="model")
        batch_ids = _failure_batches(
            session, owner_id=owner_id, model=model, requested=request.failure_batch_ids
        )
    except Exception:
        session.rollback()
        raise
    job = RepairJob(
        owner_id=owner_id,
        model_id=model.id,
        failure_batch_ids=[str(b) for b in batch_ids],
        config=request.config.model_dump(mode="json"),
        variants=request.variants,
        status=JobStatus.queued,
        max_attempts=max_attempts,
        idempotency_key=idempotency_key,
        request_sha256=digest,
    )
    if max_active_jobs is not None:
        try:
            check_active_jobs(
                session,
                owner_id=owner_id,
                limit=max_active_jobs,
                retry_after_seconds=retry_after_seconds,
            )
        except TooManyRequestsError:
            session.rollback()
            raise
    session.add(job)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key committed first.
        session.rollback()
        if idempotency_key is None:
            raise
        replay = _replay(session, owner_id=owner_id, key=idempotency_key, digest=digest)
        if replay is None:
            raise
        return view_of(session, replay), False
    enqueue(queue, job.id)
    return RepairView(job, None, {}), True


def enqueue(queue: JobQueue, job_id: uuid.UUID) -> None:
    """Send a committed job to the workers; a failed send is left to the sweeper."""
    try:
        queue.enqueue(job_id)
    except Exception:
        # The job is safely queued in the database; the sweeper re-sends old queued jobs.
        log.warning(
            "could not enqueue repair job %s; the sweeper will retry", job_id, exc_info=True
        )


def _check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS or not key.isprintable() or not key.isascii():
        raise InvalidInputError(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
            errors=[{"loc": ["header", "Idempotency-Key"], "message": "invalid"}],
        )


def _replay(session: Session, *, owner_id: uuid.UUID, key: str, digest: str) -> RepairJob | None:
    job = session.scalars(
        sa.select(RepairJob).where(RepairJob.owner_id == owner_id, RepairJob.idempotency_key == key)
    ).first()
    if job is not None and job.request_sha256 != digest:
        raise ConflictError(
            f"Idempotency-Key {key!r} was used for a different request (job {job.id})",
            code="idempotency_key_reused",
        )
    return job


def _failure_batches(
    session: Session, *, owner_id: uuid.UUID, model: Model, requested: list[uuid.UUID] | None
) -> list[uuid.UUID]:
    if requested is None:
        ids = list(
            session.scalars(
                sa.select(FailureBatch.id)
                .where(FailureBatch.owner_id == owner_id, FailureBatch.model_id == model.id)
                .order_by(FailureBatch.created_at, FailureBatch.id)
            )
        )
        if not ids:
            raise InvalidInputError(
                f"model {model.id} has no failure batches; upload one with "
                f"POST /v1/models/{model.id}/failure-batches first",
                code="no_failure_batches",
            )
        return ids
    if not requested:
        raise InvalidInputError(
            "failure_batch_ids is empty: give at least one, or leave it out to use all",
            errors=[{"loc": ["body", "failure_batch_ids"], "message": "empty list"}],
        )
    unique = list(dict.fromkeys(requested))
    for batch_id in unique:
        batch = get_owned(
            session, FailureBatch, owner_id=owner_id, id=batch_id, what="failure batch"
        )
        if batch.model_id != model.id:
            raise InvalidInputError(
                f"failure batch {batch_id} belongs to model {batch.model_id}, not {model.id}",
                errors=[{"loc": ["body", "failure_batch_ids"], "message": "other model"}],
            )
    return unique


def view_of(session: Session, job: RepairJob) -> RepairView:
    return views_of(session, [job])[0]


def views_of(session: Session, jobs: list[RepairJob]) -> list[RepairView]:
    """Jobs with their latest genotype and final metrics, in two queries for the page.

    Genotype and metric rows are written only in the transaction that ends a job
    (`worker.results`), so only finished jobs are asked for them: a poll of a queued or
    running job (what clients do all day) costs one read of the job's row."""
    ids = [j.id for j in jobs if j.status in TERMINAL_STATUSES]
    genotypes: dict[uuid.UUID, dict[str, Any]] = {}
    metrics: dict[uuid.UUID, dict[str, float]] = {j.id: {} for j in jobs}
    if ids:
        for g in session.scalars(
            sa.select(Genotype).where(Genotype.job_id.in_(ids)).order_by(Genotype.iteration)
        ):
            genotypes[g.job_id] = g.genotype  # the last iteration wins
        for m in session.scalars(sa.select(Metric).where(Metric.job_id.in_(ids))):
            metrics[m.job_id][m.name] = m.value
    return [RepairView(j, genotypes.get(j.id), metrics[j.id]) for j in jobs]


def list_repairs(
    session: Session,
    *,
    owner_id: uuid.UUID,
    status: JobStatus | None,
    model_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[RepairView], int]:
    where = [RepairJob.owner_id == owner_id]
    if status is not None:
        where.append(RepairJob.status == status)
    if model_id is not None:
        where.append(RepairJob.model_id == model_id)
    total = session.scalar(sa.select(sa.func.count()).select_from(RepairJob).where(*where)) or 0
    jobs = list(
        session.scalars(
            sa.select(RepairJob)
            .where(*where)
            .order_by(RepairJob.created_at.desc(), RepairJob.id)
            .limit(limit)
            .offset(offset)
        )
    )
    return views_of(session, jobs), int(total)


def get_repair(session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID) -> RepairView:
    return view_of(session, get_job(session, owner_id=owner_id, job_id=job_id))


def get_job(session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID) -> RepairJob:
    """The owner's job row (its `version`, bumped by every write, is the status ETag);
    another owner's job is "not found"."""
    return get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")


def cancel_repair(session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID) -> RepairView:
    """queued or awaiting_labels -> cancelled now (no worker holds it); running ->
    cancelling (the worker stops at the next step boundary); cancelling/cancelled ->
    unchanged; succeeded/failed -> 409."""
    for _ in range(3):
        job = get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")
        status = job.status
        if status in CANCEL_REQUESTED_STATUSES:
            return view_of(session, job)
        if status in TERMINAL_STATUSES:
            raise ConflictError(
                f"repair job {job_id} has {status.value}; only queued, running or "
                "awaiting_labels jobs can be cancelled",
                code="job_finished",
            )
        now = datetime.now(UTC)
        if status in CANCEL_AT_ONCE_STATUSES:
            moved = transition(
                session,
                job_id,
                to=JobStatus.cancelled,
                from_=frozenset({status}),
                values={"cancel_requested_at": now, "finished_at": now, "updated_at": now},
            )
        else:
            moved = transition(
                session,
                job_id,
                to=JobStatus.cancelling,
                from_=frozenset({status}),
                values={"cancel_requested_at": now, "updated_at": now},
            )
        session.commit()
        session.expire_all()
        if moved:
            break
        # The worker moved the job meanwhile: look again.
    job = get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")
    return view_of(session, job)


ResultKind = Literal["report", "report_png"]


def result_key(
    session: Session,
    *,
    owner_id: uuid.UUID,
    job_id: uuid.UUID,
    kind: ResultKind,
    store: ArtifactStore,
) -> tuple[str, RepairJob]:
    """The stored key of a finished job's report; 409 while the job has not succeeded."""
    job = get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")
    key = {"report": job.report_key, "report_png": job.report_png_key}[kind]
    return _stored(job, key, kind.replace("_", " "), store), job


def model_file(
    session: Session,
    *,
    owner_id: uuid.UUID,
    job_id: uuid.UUID,
    model_format: str,
    store: ArtifactStore,
    variant: str | None = None,
) -> tuple[str, str | None, RepairJob]:
    """The repaired model in `model_format`: (stored key, its SHA-256, job). 409 while the job has
    not succeeded; 404 when it has no file in that format (its export failed its check).
    `variant` names another compared variant (`variant_downloads`)."""
    job = get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")
    if variant is not None and variant != primary_variant(job):
        key, sha = _variant_model(job, variant, model_format, store)
        return key, sha, job
    key_column, sha_column = MODEL_FILE_COLUMNS[model_format]
    exported = model_format != choices.DEFAULT_MODEL_FORMAT
    what = f"{model_format} model" if exported else "model"
    why = (
        f": its {model_format} export did not pass its check against PyTorch, or the job "
        f"finished before exports existed (see info.exports in GET /v1/repairs/{job_id}/report)"
        if exported
        else ""
    )
    key = _stored(job, getattr(job, key_column), what, store, why)
    return key, getattr(job, sha_column), job


def model_formats(job: RepairJob) -> list[str]:
    """The formats the repaired model downloads in (none until the job has succeeded)."""
    if job.status != JobStatus.succeeded:
        return []
    return [f for f, (key, _) in MODEL_FILE_COLUMNS.items() if getattr(job, key) is not None]


def primary_variant(job: RepairJob) -> str:
    """The name of the job's repaired model: its first variant, or its config's."""
    if job.variants:
        return job.variants[0]
    config = {**dict.fromkeys(("selection", "retrain", "search")), **job.config}
    return choices.variant_name(
        config["selection"] or choices.DEFAULT_SELECTION,
        config["retrain"] or choices.DEFAULT_RETRAIN,
        search=config["search"] or choices.DEFAULT_SEARCH,
    )


def variant_downloads(job: RepairJob) -> dict[str, list[str]]:
    """Variant -> the formats its model downloads in (none until the job has succeeded)."""
    formats = model_formats(job)
    if not formats:
        return {}
    exports = job.variant_exports or {}
    others = {
        name: [choices.DEFAULT_MODEL_FORMAT]
        + [f for f in choices.EXPORT_FORMATS if f in exports.get(name, {})]
        for name in job.variant_models or {}
    }
    return {primary_variant(job): formats, **others}


def _variant_model(
    job: RepairJob, variant: str, model_format: str, store: ArtifactStore
) -> tuple[str, str]:
    models = job.variant_models or {}
    if job.status == JobStatus.succeeded and variant not in models:
        have = ", ".join([primary_variant(job), *models])
        raise NotFoundError(f"repair job {job.id} has no variant {variant!r}; it has: {have}")
    if model_format == choices.DEFAULT_MODEL_FORMAT:
        sha = models.get(variant)
        what, why = f"{variant} model", ""
    else:
        sha = (job.variant_exports or {}).get(variant, {}).get(model_format)
        what = f"{model_format} model of the {variant} variant"
        why = (
            f": its {model_format} export did not pass its check against PyTorch, or the job "
            "finished before every variant was exported (see info.variant_exports in "
            f"GET /v1/repairs/{job.id}/report)"
        )
    key = (
        None
        if sha is None
        else store.variant_model_key(job.owner_id, job.id, variant, model_format)
    )
    return _stored(job, key, what, store, why), sha or ""


def _stored(job: RepairJob, key: str | None, what: str, store: ArtifactStore, why: str = "") -> str:
    if job.status == JobStatus.succeeded and key is None:
        raise NotFoundError(f"repair job {job.id} produced no {what}{why}")
    if job.status != JobStatus.succeeded or key is None:
        raise ConflictError(
            f"repair job {job.id} is {job.status.value}; its {what} is "
            "available once the job has succeeded",
            code="result_not_ready",
        )
    if not store.exists(key):
        raise NotFoundError(f"the {what} of repair job {job.id} is missing")
    return key


def figure_key(
    session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID, name: str, store: ArtifactStore
) -> str:
    """The stored key of a finished job's report figure by file name
    (`repair_core.choices.figure_files`): 404 naming the valid names for an unknown one, 409
    before the job has succeeded."""
    valid = figure_files()
    if name not in valid:
        raise NotFoundError(f"no figure named {name!r}; valid names: {', '.join(valid)}")
    job = get_owned(session, RepairJob, owner_id=owner_id, id=job_id, what="repair job")
    if job.status != JobStatus.succeeded:
        raise ConflictError(
            f"repair job {job_id} is {job.status.value}; its figures are available once the "
            "job has succeeded",
            code="result_not_ready",
        )
    if name not in (job.figures or []):
        have = ", ".join(job.figures or []) or "none"
        raise NotFoundError(f"repair job {job_id} has no figure {name!r}; it has: {have}")
    key = store.figure_key(owner_id, job_id, name)
    if not store.exists(key):
        raise NotFoundError(f"figure {name!r} of repair job {job_id} is missing")
    return key
