"""The one settings object of the service, read from `REPAIR_*` environment variables.

Nested groups use `__` as delimiter, e.g. `REPAIR_DATABASE__URL`. Nothing else in the
code base reads the environment; `repair_core` receives frozen dataclass configs instead.
The defaults are the embedded default: SQLite, a serverless broker and artifacts under
`./var/`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")

DEFAULT_AUTH_PEPPER = "embedded-default-pepper"
# Brokers that need no server: only the embedded default uses them.
_EMBEDDED_BROKERS = ("filesystem://", "memory://")

MiB = 1024 * 1024
GiB = 1024 * MiB


class DatabaseSettings(BaseModel):
    # Production: postgresql+psycopg://user:pass@host:5432/repair
    url: str = f"sqlite:///{VAR_DIR / 'repair.db'}"
    echo: bool = False
    # Request slots of one API process (docs/api-under-load.md): the pool holds this many
    # connections plus `uploads.max_concurrent_total`, never more (no overflow).
    pool_size: int = Field(default=10, ge=1)
    # A request waits this long for a slot, then answers 503 `database_busy`.
    acquire_timeout_seconds: float = Field(default=1.0, gt=0)
    # More requests than this waiting for a slot: 503 at once.
    max_waiting: int = Field(default=200, ge=0)
    # Defence only: with the gate a checkout never waits.
    pool_timeout_seconds: float = Field(default=2.0, gt=0)
    connect_timeout_seconds: int = Field(default=3, ge=1)
    busy_retry_after_seconds: int = Field(default=1, ge=1)
    # `/readyz` reports `saturated` when no slot frees within this.
    ready_timeout_seconds: float = Field(default=0.5, gt=0)


class BrokerSettings(BaseModel):
    # Production: redis://host:6379/0. The default `filesystem://` needs no server:
    # API and worker exchange messages through files under `folder`.
    url: str = "filesystem://"
    folder: Path = VAR_DIR / "broker"
    queue: str = "repair"


class S3Settings(BaseModel):
    # Any S3-compatible endpoint (MinIO, Ceph, AWS); empty: AWS's own for `region`.
    endpoint_url: str = ""
    bucket: str = "repair-artifacts"
    region: str = "us-east-1"
    # Empty: boto3's own chain (instance role, ~/.aws, AWS_* variables).
    access_key_id: str = ""
    secret_access_key: str = ""
    # Prepended to every key, so several deployments can share a bucket ("" or "a/b").
    prefix: str = ""
    # Files at least this large go up in parts of `multipart_chunk_bytes` (each part
    # checksummed by the server with SHA-256); S3 needs parts of at least 5 MiB.
    multipart_threshold_bytes: int = Field(default=64 * MiB, ge=5 * MiB)
    multipart_chunk_bytes: int = Field(default=16 * MiB, ge=5 * MiB)
    # Downloads answer 307 to a presigned URL of the object instead of streaming it
    # through the API; the URL expires after `presign_seconds` (at most 15 min).
    presign_downloads: bool = False
    presign_seconds: int = Field(default=300, ge=1, le=900)
    # Whether to create the bucket at start-up when it is missing (MinIO in compose).
    create_bucket: bool = False
    # Tries of one request (botocore's "standard" retries: throttling, 5xx, resets).
    max_attempts: int = Field(default=5, ge=1)


class ArtifactSettings(BaseModel):
    # "local": `root` is the store (one machine or a shared volume). "s3": the store is
    # the bucket of `s3` and `root` is this machine's scratch folder (temp files, cached
    # inputs, a running job's work directory, written through to the bucket).
    backend: Literal["local", "s3"] = "local"
    root: Path = VAR_DIR / "artifacts"
    s3: S3Settings = Field(default_factory=S3Settings)


class UploadLimits(BaseModel):
    checkpoint_bytes: int = 2 * GiB
    dataset_bytes: int = 20 * GiB
    failure_batch_bytes: int = 2 * GiB
    json_bytes: int = 1 * MiB
    archive_members: int = 2_000_000
    member_bytes: int = 64 * MiB
    unpacked_bytes: int = 100 * GiB
    image_pixels: int = 4096 * 4096
    # Uploads being received or validated at once (each holds a sandbox child for minutes).
    max_concurrent_per_owner: int = Field(default=2, ge=1)
    max_concurrent_total: int = Field(default=4, ge=1)


class QuotaSettings(BaseModel):
    # Per-owner abuse limits (docs/upload-safety.md fault 12, docs/job-lifecycle.md fault 33).
    # Bytes an owner may keep stored: uploads (as received), what their repair jobs keep
    # (results and reduced work directories) and uploads still in flight; beyond it: 413.
    storage_bytes: int = 200 * GiB
    # An upload in flight reserves its Content-Length (a chunked one: this much more each
    # time it passes what it reserved) before those bytes are read; the reservation lapses
    # this long after it was last renewed (renewed while the upload streams and before it
    # is validated), so a process that died frees it.
    reservation_step_bytes: int = Field(default=64 * MiB, ge=1)
    reservation_seconds: float = Field(default=1800.0, gt=0)
    # Jobs an owner may have active at once (queued, running, cancelling, awaiting
    # labels); beyond it: 429.
    active_jobs: int = 4
    # The `Retry-After` of that 429.
    retry_after_seconds: int = 60


class SandboxSettings(BaseModel):
    # Limits of the child process that parses untrusted uploads
    # (docs/upload-safety.md, "The sandbox").
    # Address space (RLIMIT_AS); a checkpoint's validation gets twice its size on top.
    memory_bytes: int = 4 * GiB
    cpu_seconds: int = 300
    timeout_seconds: float = 600.0
    # The children's interpreter (default: the API's own). A root API drops them to
    # `nobody`, who must be able to read it (docs/sandbox-boundary.md).
    python: str | None = None
    # `/readyz` fails (503) while the children would run as root or with the network: a
    # production API sets it, so a host that cannot confine them never takes uploads.
    # Off by default: the embedded default must start on any machine (it logs what holds).
    require_confinement: bool = False


class WorkerSettings(BaseModel):
    # Invariant (docs/job-lifecycle.md): heartbeat < lease < soft limit < hard limit < visibility;
    # `worker.timing` refuses settings that break it.
    heartbeat_seconds: float = 60.0
    # With an S3 store: how often the running job's checkpoints and journal are written
    # through from the scratch folder (a worker that dies loses at most this much).
    writethrough_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: float = 600.0
    # Hard time limit of one run of a job (a phase): past it the job process is killed and
    # the job fails (`TimeLimitExceeded`). The soft limit comes this much earlier: the job
    # checkpoints and hands on to a fresh run (docs/job-lifecycle.md, "Time limits").
    phase_hard_seconds: int = 8 * 3600
    soft_limit_margin_seconds: int = 600
    # The Redis visibility timeout is the hard limit plus this much (Celery's Redis caveat:
    # an unacknowledged message is delivered again after it, so it must outlast a run).
    visibility_margin_seconds: int = Field(default=3600, gt=0)
    max_attempts: int = 3
    # Runs a job may hand on without spending an attempt (deploys, database or broker
    # outages, and the soft time limit, which checkpoints and hands on so a job longer than
    # one phase resumes across phases): 20 x 8 h covers the paper profile's tens of hours.
    max_handoffs: int = 20
    # The sweeper: expired leases -> re-queued (or failed after max_attempts), and queued
    # jobs untouched this long -> their message is sent again (lost broker messages).
    sweep_seconds: float = 60.0
    requeue_queued_after_seconds: float = 120.0
    # A job awaiting labels this long is cancelled by the sweeper (7 days).
    labels_wait_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    progress_min_interval_seconds: float = 0.3
    # How often a running job looks for a cancel request (a cheap primary-key read).
    cancel_poll_seconds: float = 1.0
    # A deploy (SIGQUIT/Ctrl+C) lets a running job go on this long before requeueing it.
    soft_shutdown_seconds: float = 60.0
    # Jobs per worker child process before it is replaced (frees GPU memory); 0: no limit.
    max_tasks_per_child: int = 1
    # Draw the report figures (cells, heatmap, curves) when a job succeeds: seconds of CPU.
    report_figures: bool = True


class UpkeepSettings(BaseModel):
    # The upkeep sweep (docs/upkeep.md): abandoned temp files, artifact files and job
    # folders no row points at, lapsed upload reservations, work directories of finished
    # jobs not reduced yet. It runs on every worker's timer this often, and once at API
    # start-up.
    interval_seconds: float = Field(default=600.0, gt=0)
    # Only files untouched this long are swept: a file being written is never that old
    # (an upload's temp file is written as it streams; validation takes at most
    # `sandbox.timeout_seconds`, which must be shorter).
    temp_age_seconds: float = Field(default=3600.0, gt=0)
    # Published files and job folders with no row: older than this (covers a file
    # published whose row is about to commit).
    orphan_age_seconds: float = Field(default=3600.0, gt=0)


class ApiSettings(BaseModel):
    # `python -m api`: where it listens and how many worker processes it runs.
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1)
    # Trust X-Forwarded-For from `forwarded_allow_ips` (behind a reverse proxy).
    proxy_headers: bool = False
    forwarded_allow_ips: str = "127.0.0.1"


class AuthSettings(BaseModel):
    # A successful key check is reused this long (0: every request reads the key row);
    # a revoked key is refused at most this long after the revocation commits.
    cache_seconds: float = Field(default=5.0, ge=0)
    cache_entries: int = Field(default=10_000, ge=0)


class LimitSettings(BaseModel):
    # Where limit state lives: "auto" is Redis when the broker is (state shared by every API
    # process), else this process's memory (one process only).
    backend: Literal["auto", "memory", "redis"] = "auto"
    redis_url: str | None = None  # default: the broker's URL
    key_prefix: str = "repair:lim:"
    # Per API key: a burst, then this many a minute (429 with Retry-After beyond).
    jobs_per_minute: float = Field(default=10, gt=0)
    jobs_burst: int = Field(default=20, ge=1)
    uploads_per_minute: float = Field(default=10, gt=0)
    uploads_burst: int = Field(default=20, ge=1)
    # Per client address: failed authentications, then every request of it is refused.
    failed_auth_per_minute: float = Field(default=10, gt=0)
    failed_auth_burst: int = Field(default=20, ge=1)
    # `Retry-After` of a refused upload (concurrency caps), and the lease of an upload slot.
    upload_retry_after_seconds: int = Field(default=30, ge=1)
    slot_lease_seconds: float = Field(default=60.0, gt=0)


class EventSettings(BaseModel):
    # `GET /v1/repairs/{id}/events`: how often a stream reads its job, the caps on open
    # streams per API process (beyond: 429), and how long one stream lasts (the client
    # then reconnects with Last-Event-ID).
    poll_seconds: float = Field(default=1.0, gt=0)
    max_streams: int = Field(default=500, ge=1)
    max_streams_per_owner: int = Field(default=10, ge=1)
    max_stream_seconds: float = Field(default=3600.0, gt=0)


class MetricsSettings(BaseModel):
    # With api.workers > 1 each API process writes its counters here (prometheus-client's
    # multiprocess mode) and a scrape sums them; `python -m api` empties it at start.
    multiproc_dir: Path = VAR_DIR / "prometheus"
    # Set: `/metrics` asks for `Authorization: Bearer <token>`; None: open (private network).
    token: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REPAIR_", env_nested_delimiter="__", extra="ignore"
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    uploads: UploadLimits = Field(default_factory=UploadLimits)
    quotas: QuotaSettings = Field(default_factory=QuotaSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    events: EventSettings = Field(default_factory=EventSettings)
    upkeep: UpkeepSettings = Field(default_factory=UpkeepSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    # "auto" picks CUDA when present, else CPU; or "cpu", "cuda", "cuda:1".
    device: str = "auto"
    # Server-side secret mixed into API-key digests. The default is refused at start-up
    # unless the embedded default (SQLite and a serverless broker) is in use.
    auth_pepper: str = DEFAULT_AUTH_PEPPER
    # Test-only: the named point where the process kills itself with SIGKILL (a crash
    # between two steps, e.g. "upload_published": file published, row not committed).
    fault_point: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.uploads.max_concurrent_total < self.uploads.max_concurrent_per_owner:
            raise ValueError(
                "uploads.max_concurrent_total must be >= uploads.max_concurrent_per_owner"
            )
        if self.upkeep.temp_age_seconds <= self.sandbox.timeout_seconds:
            raise ValueError(
                "upkeep.temp_age_seconds must exceed sandbox.timeout_seconds: an upload's "
                "temp file sits untouched while it is validated"
            )
        if self.quotas.reservation_seconds <= self.sandbox.timeout_seconds:
            raise ValueError(
                "quotas.reservation_seconds must exceed sandbox.timeout_seconds: a "
                "reservation must outlast the validation of its upload"
            )
        limits_url = self.limits.redis_url or self.broker.url
        in_memory = self.limits.backend == "memory" or (
            self.limits.backend == "auto" and not limits_url.startswith(("redis://", "rediss://"))
        )
        if in_memory and self.api.workers > 1:
            raise ValueError(
                "limits.backend=memory keeps limits per process: use redis with api.workers > 1"
            )
        return self


class InsecureSettingsError(ValueError):
    """Settings a service must not start with; the message names the setting to set."""


def is_embedded(settings: Settings) -> bool:
    """The one-machine default: a SQLite file and a serverless broker."""
    return settings.database.url.startswith("sqlite") and settings.broker.url.startswith(
        _EMBEDDED_BROKERS
    )


def check_secrets(settings: Settings) -> None:
    """Refuse the default auth pepper outside the embedded default: with it, anyone who
    reads this code can mint digests that match the keys of a real deployment's database."""
    if settings.auth_pepper == DEFAULT_AUTH_PEPPER and not is_embedded(settings):
        raise InsecureSettingsError(
            "the default auth pepper is only allowed with the embedded default (SQLite and "
            "the filesystem:// broker): set REPAIR_AUTH_PEPPER to a long random secret "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def to_env(settings: Settings) -> dict[str, str]:
    """`settings` as the `REPAIR_*` variables that rebuild them in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, dict):
            for inner, item in value.items():
                # None is left out: a variable can only say it as "null", which a string
                # setting reads as the text "null" (the unset default is None already).
                if item is not None:
                    env[f"REPAIR_{name}__{inner}".upper()] = _env_value(item)
        elif value is not None:
            env[f"REPAIR_{name}".upper()] = _env_value(value)
    return env


def _env_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)
