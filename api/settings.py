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


class ArtifactSettings(BaseModel):
    root: Path = VAR_DIR / "artifacts"


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
    # Bytes of uploads (as received) an owner may keep stored; beyond it: 413.
    storage_bytes: int = 200 * GiB
    # Jobs an owner may have queued, running or cancelling at once; beyond it: 429.
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


class WorkerSettings(BaseModel):
    # Invariant (docs/job-lifecycle.md): heartbeat < lease < soft limit < hard limit < visibility;
    # `worker.timing` refuses settings that break it.
    heartbeat_seconds: float = 60.0
    lease_seconds: float = 600.0
    # Hard time limit of one run of a job (a phase): past it the job process is killed and
    # the job fails (`TimeLimitExceeded`). The soft limit comes this much earlier: the job
    # checkpoints and hands on to a fresh run (docs/job-lifecycle.md, "Time limits").
    phase_hard_seconds: int = 8 * 3600
    soft_limit_margin_seconds: int = 600
    max_attempts: int = 3
    # Runs a job may hand on without spending an attempt (deploys, database or broker
    # outages, and the soft time limit, which checkpoints and hands on so a job longer than
    # one phase resumes across phases): 20 x 8 h covers the paper profile's tens of hours.
    max_handoffs: int = 20
    # The sweeper: expired leases -> re-queued (or failed after max_attempts), and queued
    # jobs untouched this long -> their message is sent again (lost broker messages).
    sweep_seconds: float = 60.0
    requeue_queued_after_seconds: float = 120.0
    progress_min_interval_seconds: float = 0.3
    # How often a running job looks for a cancel request (a cheap primary-key read).
    cancel_poll_seconds: float = 1.0
    # A deploy (SIGQUIT/Ctrl+C) lets a running job go on this long before requeueing it.
    soft_shutdown_seconds: float = 60.0
    # Jobs per worker child process before it is replaced (frees GPU memory); 0: no limit.
    max_tasks_per_child: int = 1


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
    # "auto" picks CUDA when present, else CPU; or "cpu", "cuda", "cuda:1".
    device: str = "auto"
    # Server-side secret mixed into API-key digests; set it in production.
    auth_pepper: str = "embedded-default-pepper"

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.uploads.max_concurrent_total < self.uploads.max_concurrent_per_owner:
            raise ValueError(
                "uploads.max_concurrent_total must be >= uploads.max_concurrent_per_owner"
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def to_env(settings: Settings) -> dict[str, str]:
    """`settings` as the `REPAIR_*` variables that rebuild them in a child process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, dict):
            for inner, item in value.items():
                env[f"REPAIR_{name}__{inner}".upper()] = _env_value(item)
        else:
            env[f"REPAIR_{name}".upper()] = _env_value(value)
    return env


def _env_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)
