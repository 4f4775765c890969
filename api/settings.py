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

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")

MiB = 1024 * 1024
GiB = 1024 * MiB


class DatabaseSettings(BaseModel):
    # Production: postgresql+psycopg://user:pass@host:5432/repair
    url: str = f"sqlite:///{VAR_DIR / 'repair.db'}"
    echo: bool = False


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
    # Hard time limit of one job; the soft limit (a clean `failed`) comes this much earlier.
    phase_hard_seconds: int = 8 * 3600
    soft_limit_margin_seconds: int = 600
    max_attempts: int = 3
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
    # "auto" picks CUDA when present, else CPU; or "cpu", "cuda", "cuda:1".
    device: str = "auto"
    # Server-side secret mixed into API-key digests; set it in production.
    auth_pepper: str = "embedded-default-pepper"


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
