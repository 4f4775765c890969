"""Fixtures of the API tests: a migrated Postgres, a live uvicorn server on a free port
running `create_app`, the real Celery client on the local Redis, owners with keys."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.db.migrate import upgrade
from api.db.session import make_engine, make_session_factory
from api.queue import CeleryJobQueue
from api.services.owners import create_owner
from api.settings import (
    ArtifactSettings,
    AuthSettings,
    BrokerSettings,
    DatabaseSettings,
    LimitSettings,
    SandboxSettings,
    Settings,
    UploadLimits,
)

KiB = 1024
MiB = 1024 * KiB

# Small caps so every limit can be tripped with tiny files.
TEST_LIMITS = UploadLimits(
    checkpoint_bytes=8 * MiB,
    dataset_bytes=512 * KiB,
    failure_batch_bytes=512 * KiB,
    json_bytes=64 * KiB,
    archive_members=500,
    # >= 1 MiB: ingest's tar.gz reader drains the gzip trailer in 1 MiB reads that the
    # member cap also bounds.
    member_bytes=1 * MiB,
    unpacked_bytes=4 * MiB,
    image_pixels=64 * 64,
)


UNLIMITED = LimitSettings(
    backend="memory",
    jobs_per_minute=1e6,
    jobs_burst=100_000,
    uploads_per_minute=1e6,
    uploads_burst=100_000,
    failed_auth_per_minute=1e6,
    failed_auth_burst=100_000,
)


@dataclass
class LiveServer:
    url: str
    settings: Settings
    session_factory: sessionmaker[Session]

    def client(self, key: str | None = None, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0, **kwargs)  # type: ignore[arg-type]

    @property
    def artifacts_root(self) -> Path:
        return self.settings.artifacts.root


class _ThreadedServer(uvicorn.Server):
    """uvicorn in a background thread that says when it is accepting connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


@contextmanager
def scratch_database(postgres_url: str, prefix: str) -> Iterator[str]:
    """A database of its own on the test server, dropped afterwards.

    The session's `postgres_url` database stays empty for the tests that expect it so.
    """
    url = sa.make_url(postgres_url)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def api_database_url(postgres_url: str) -> Iterator[str]:
    with scratch_database(postgres_url, "repair_api") as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def api_settings(
    api_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    root = tmp_path_factory.mktemp("artifacts")
    return Settings(
        database=DatabaseSettings(url=api_database_url),
        broker=BrokerSettings(url=redis_url, queue=f"test-repair-{uuid.uuid4().hex[:10]}"),
        artifacts=ArtifactSettings(root=root),
        uploads=TEST_LIMITS,
        sandbox=SandboxSettings(cpu_seconds=60, timeout_seconds=120.0),
        # Short, so the revocation test waits little; long enough to be exercised.
        auth=AuthSettings(cache_seconds=0.3),
        # Every test comes from 127.0.0.1 and many send bad keys: limits high enough never to
        # trip here; the limit tests build servers of their own.
        limits=UNLIMITED,
    )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free local port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _ThreadedServer(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(timeout=30), "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def live_server(api_settings: Settings) -> Iterator[LiveServer]:
    app = create_app(api_settings, CeleryJobQueue(api_settings.broker))
    engine = make_engine(api_settings.database.url)
    try:
        with serve(app) as url:
            yield LiveServer(url, api_settings, make_session_factory(engine))
    finally:
        engine.dispose()


def make_owner(live_server: LiveServer) -> tuple[uuid.UUID, str]:
    """Creates an owner (as `repairctl admin create-owner` does); returns (id, key)."""
    with live_server.session_factory() as session:
        created = create_owner(
            session, name=f"owner-{uuid.uuid4().hex[:12]}", pepper=live_server.settings.auth_pepper
        )
    return created.owner_id, created.api_key


@pytest.fixture
def new_owner(live_server: LiveServer) -> Callable[[], tuple[uuid.UUID, str]]:
    return lambda: make_owner(live_server)
