"""SQLAlchemy 2 typed models: owners, keys, uploads, repair jobs and their results.

Every resource row carries `owner_id`; queries always filter on it (see `api/services`).
Artifacts live in the artifact store under `storage_key`s (`<owner_id>/<uuid>`); rows
are committed only after their files are in place, so a row never points at nothing.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from api.db.base import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend.

    SQLite has no time zones and hands back naive datetimes; all we ever store is UTC,
    so we attach UTC on the way out and convert to UTC on the way in.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, default=utcnow, nullable=False)


def _parent_fk(column: str) -> Mapped[uuid.UUID]:
    """The indexed id of the row this one belongs to; deleting that row deletes this one."""
    return mapped_column(
        sa.Uuid, sa.ForeignKey(column, ondelete="CASCADE"), nullable=False, index=True
    )


def _owner_fk() -> Mapped[uuid.UUID]:
    return _parent_fk("owners.id")


class Owner(Base):
    __tablename__ = "owners"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(sa.String(128), unique=True, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class ApiKey(Base):
    """An API key, stored only as HMAC-SHA256(pepper, key); `key_id` is its public prefix."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    key_id: Mapped[str] = mapped_column(sa.String(16), unique=True, nullable=False)
    digest: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class _Upload:
    """Columns every uploaded artifact has: what the client sent and where it now lives."""

    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    # The client's file name, escaped; metadata only, never used as a path.
    original_filename: Mapped[str] = mapped_column(sa.String(512), nullable=False)
    # SHA-256 and size of the uploaded bytes, as received.
    sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    source_format: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    # The validated, normalised form (npz / safetensors) in the artifact store.
    storage_key: Mapped[str] = mapped_column(sa.String(255), nullable=False)


class Dataset(_Upload, Base):
    __tablename__ = "datasets"
    __table_args__ = (
        # Identical re-uploads by the same owner resolve to the same dataset.
        sa.UniqueConstraint("owner_id", "sha256", name="uq_datasets_owner_id_sha256"),
    )

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    class_names: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False)
    image_shape: Mapped[list[int]] = mapped_column(sa.JSON, nullable=False)  # [C, H, W]
    # {"train": n, "test": n, "val": n}
    split_counts: Mapped[dict[str, int]] = mapped_column(sa.JSON, nullable=False)
    # Files skipped as undecodable (within the bad-image tolerance): [{"file", "reason"}].
    skipped: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = _created_at()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class Model(_Upload, Base):
    __tablename__ = "models"

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    dataset_id: Mapped[uuid.UUID] = _parent_fk("datasets.id")
    genotype: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    network_config: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    num_classes: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    num_parameters: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class FailureBatch(_Upload, Base):
    __tablename__ = "failure_batches"

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    model_id: Mapped[uuid.UUID] = _parent_fk("models.id")
    accepted: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # [{"file": name, "reason": why}] for every image that was not accepted.
    rejected: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = _created_at()


class RepairJob(Base):
    """One repair: its request, its live state (written by the worker) and its results.

    The worker claims a job with a conditional UPDATE that sets a fresh `lease_token`;
    every later write carries `AND lease_token = :mine` so a worker that lost its lease
    cannot overwrite its successor (docs/job-lifecycle.md, "The lease").
    """

    __tablename__ = "repair_jobs"
    __table_args__ = (
        sa.UniqueConstraint(
            "owner_id", "idempotency_key", name="uq_repair_jobs_owner_id_idempotency_key"
        ),
        sa.CheckConstraint("progress >= 0 AND progress <= 100", name="progress_range"),
        sa.Index("ix_repair_jobs_owner_id_created_at", "owner_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    model_id: Mapped[uuid.UUID] = _parent_fk("models.id")
    failure_batch_ids: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)

    status: Mapped[JobStatus] = mapped_column(
        sa.Enum(
            JobStatus,
            name="job_status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda e: [m.value for m in e],
        ),
        nullable=False,
        default=JobStatus.queued,
        index=True,
    )
    stage: Mapped[str | None] = mapped_column(sa.String(32))
    progress: Mapped[float] = mapped_column(sa.Float, nullable=False, default=0.0)  # percent
    step: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    total: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    # Latest live metrics of the running stage (loss, accuracy, ...).
    metrics: Mapped[dict[str, float]] = mapped_column(sa.JSON, nullable=False, default=dict)
    eta_seconds: Mapped[float | None] = mapped_column(sa.Float)

    # Failed attempts plus the running one; capped by max_attempts.
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # Runs handed on by infrastructure (deploy, soft time limit, database or broker outage):
    # they do not spend `attempts`; capped by `worker.max_handoffs`.
    handoffs: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    )
    # 1 once the job ran out of memory and was retried with half its batch sizes.
    oom_retries: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default=sa.text("0")
    )
    lease_token: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    error: Mapped[str | None] = mapped_column(sa.Text)
    error_type: Mapped[str | None] = mapped_column(sa.String(128))
    # Seconds per stage, e.g. {"selecting": 12.3, "searching": 4410.0}.
    timings: Mapped[dict[str, float]] = mapped_column(sa.JSON, nullable=False, default=dict)

    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255))
    request_sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)

    work_dir: Mapped[str | None] = mapped_column(sa.String(255))
    result_model_key: Mapped[str | None] = mapped_column(sa.String(255))
    result_model_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    report_key: Mapped[str | None] = mapped_column(sa.String(255))
    report_png_key: Mapped[str | None] = mapped_column(sa.String(255))

    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
    # Optimistic locking: ORM updates fail with StaleDataError when someone else wrote first.
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Genotype(Base):
    """An architecture a repair job found; one row per search iteration."""

    __tablename__ = "genotypes"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "iteration", name="uq_genotypes_job_id_iteration"),
    )

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    job_id: Mapped[uuid.UUID] = _parent_fk("repair_jobs.id")
    iteration: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    genotype: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class Metric(Base):
    """A final evaluation number of a job, e.g. `repaired.clean_accuracy` = 0.93."""

    __tablename__ = "metrics"
    __table_args__ = (sa.UniqueConstraint("job_id", "name", name="uq_metrics_job_id_name"),)

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    job_id: Mapped[uuid.UUID] = _parent_fk("repair_jobs.id")
    name: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    value: Mapped[float] = mapped_column(sa.Float, nullable=False)
    created_at: Mapped[datetime] = _created_at()
