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
    # Selection done, the picked unlabeled failures wait for the owner's labels; no worker
    # and no lease hold the job meanwhile.
    awaiting_labels = "awaiting_labels"
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
    # darts | timm | torchvision | onnx (repair_core.choices.MODEL_FAMILIES)
    family: Mapped[str] = mapped_column(
        sa.String(16), nullable=False, default="darts", server_default="darts"
    )
    architecture: Mapped[str | None] = mapped_column(sa.String(128))  # timm/torchvision name
    genotype: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    network_config: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    # {channels, height, width, mean, std}: what the deployed model takes
    input_spec: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    num_classes: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    num_parameters: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    num_flops: Mapped[int | None] = mapped_column(sa.BigInteger)  # per image; None for ONNX
    created_at: Mapped[datetime] = _created_at()


class FailureBatch(_Upload, Base):
    __tablename__ = "failure_batches"

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    model_id: Mapped[uuid.UUID] = _parent_fk("models.id")
    accepted: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # Accepted images that came without a label (taken on trust as failures).
    unlabeled: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    # [{"file": name, "reason": why}] for every image that was not accepted.
    rejected: Mapped[list[dict[str, str]]] = mapped_column(sa.JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = _created_at()


JOB_KIND_REPAIR = "repair"
JOB_KIND_TRANSFER = "transfer"


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
    # "repair", or "transfer" (docs/transfer.md): the source job's genotype retrained on
    # `dataset_id`; its config holds the genotypes, so the job outlives its source.
    kind: Mapped[str] = mapped_column(
        sa.String(16), nullable=False, default=JOB_KIND_REPAIR, server_default=JOB_KIND_REPAIR
    )
    source_job_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("repair_jobs.id", ondelete="SET NULL"), index=True
    )
    dataset_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.Uuid, sa.ForeignKey("datasets.id", ondelete="CASCADE"), index=True
    )

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

    # Label on demand (docs/label-on-demand.md). The owner's labels so far, failure row
    # (as a string) -> class index; how many label uploads were taken; the picks of the
    # round that waits: [{"id", "file", "predicted", "confidence"}], and their archive.
    labels: Mapped[dict[str, int]] = mapped_column(sa.JSON, nullable=False, default=dict)
    label_rounds: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    picks: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, nullable=False, default=list)
    picks_key: Mapped[str | None] = mapped_column(sa.String(255))
    labels_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Failures the deployed model was seen to misclassify (labelled), and those taken on
    # trust (no label to check them against); set once the failures were confirmed.
    failures_confirmed: Mapped[int | None] = mapped_column(sa.Integer)
    failures_on_trust: Mapped[int | None] = mapped_column(sa.Integer)
    result_model_key: Mapped[str | None] = mapped_column(sa.String(255))
    result_model_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    # The repaired model's exports (null when a format's export failed its check).
    result_onnx_key: Mapped[str | None] = mapped_column(sa.String(255))
    result_onnx_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    result_torchscript_key: Mapped[str | None] = mapped_column(sa.String(255))
    result_torchscript_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    report_key: Mapped[str | None] = mapped_column(sa.String(255))
    report_png_key: Mapped[str | None] = mapped_column(sa.String(255))
    # Bytes the job keeps in the artifact store (results and its reduced work directory),
    # counted against the owner's storage quota; measured once the job has finished.
    stored_bytes: Mapped[int] = mapped_column(
        sa.BigInteger, nullable=False, default=0, server_default="0"
    )
    # Bytes of resume state and scratch deleted from the work directory once the job
    # finished; None until that was done (the upkeep sweep retries it).
    work_bytes_freed: Mapped[int | None] = mapped_column(sa.BigInteger)
    # File names of the report figures published beside the job (`ArtifactStore.figure_key`),
    # e.g. ["robustness-heatmap.png", ...]; None for jobs finished before figures existed.
    figures: Mapped[list[str] | None] = mapped_column(sa.JSON)
    # The variants the job compares in one report (`choices.parse_variant` names), the first
    # the primary; None for a plain repair. The other variants' models are published in the
    # job's folder (`ArtifactStore.variant_model_key`), name -> SHA-256 in `variant_models`;
    # their exports that passed their check beside them, name -> format -> SHA-256 in
    # `variant_exports` (None for jobs finished before variants were exported).
    variants: Mapped[list[str] | None] = mapped_column(sa.JSON)
    variant_models: Mapped[dict[str, str] | None] = mapped_column(sa.JSON)
    variant_exports: Mapped[dict[str, dict[str, str]] | None] = mapped_column(sa.JSON)

    created_at: Mapped[datetime] = _created_at()
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )
    # Optimistic locking: ORM updates fail with StaleDataError when someone else wrote first.
    version: Mapped[int] = mapped_column(sa.Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


# Model format (`choices.MODEL_FORMAT_CHOICES`) -> the job's (storage key, SHA-256) columns.
MODEL_FILE_COLUMNS: dict[str, tuple[str, str]] = {
    "safetensors": ("result_model_key", "result_model_sha256"),
    "onnx": ("result_onnx_key", "result_onnx_sha256"),
    "torchscript": ("result_torchscript_key", "result_torchscript_sha256"),
}
# Every column of a job that names a file in the artifact store (outside its job folder):
# what deletes, quotas and the orphan sweep must all see.
RESULT_KEY_COLUMNS: tuple[str, ...] = (
    *(key for key, _ in MODEL_FILE_COLUMNS.values()),
    "report_key",
    "report_png_key",
)


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


# Metric rows the API reads back into typed fields of a job (the worker writes them).
CLEAN_DROP_METRIC = "repaired.clean_accuracy_dropped"  # 1.0: more than 1 point below phi0


def size_metric(role: str, what: str) -> str:
    """`original.params`, `repaired.flops`, ...: a row's parameters or FLOPs per image."""
    return f"{role}.{what}"


def export_diff_metric(model_format: str) -> str:
    """The max abs logit difference of an export against PyTorch on the probe batch."""
    return f"export.{model_format}.max_abs_diff"


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


class StorageReservation(Base):
    """Bytes of an upload in flight, held against the owner's storage quota until the
    upload's row is committed or it failed (docs/upkeep.md, "Quota"). A process that dies
    mid-upload leaves a row that stops counting at `expires_at` and is swept after."""

    __tablename__ = "storage_reservations"

    id: Mapped[uuid.UUID] = _id()
    owner_id: Mapped[uuid.UUID] = _owner_fk()
    bytes: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    created_at: Mapped[datetime] = _created_at()


class WorkerHeartbeat(Base):
    """The last sign of life of each worker (its main process, every `worker.sweep_seconds`),
    so the API's `/metrics` can report workers, idle ones too."""

    __tablename__ = "worker_heartbeats"

    name: Mapped[str] = mapped_column(sa.String(255), primary_key=True)  # Celery's hostname
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
