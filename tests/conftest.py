"""Shared fixtures: a fresh Postgres database per test run, the local Redis, tiny tensors."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_HOST = os.environ.get("REPAIR_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:5432/postgres"
REDIS_URL = os.environ.get("REPAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def pytest_configure(config: pytest.Config) -> None:
    # Test servers run on Postgres and Redis, where the default auth pepper is refused
    # (api/settings.py, check_secrets); Settings built by any test read this one.
    os.environ.setdefault("REPAIR_AUTH_PEPPER", f"test-pepper-{uuid.uuid4().hex}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # GPU tests are deselected (not skipped) where no CUDA device exists: CI has none.
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    kept = [item for item in items if "gpu" not in item.keywords]
    deselected = [item for item in items if "gpu" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created for this test run and dropped after it."""
    from sqlalchemy import create_engine, text

    name = f"repair_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API server (moto's server mode) on loopback for this test run."""
    from tests.s3server import moto_server

    with moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.ping()
    client.close()
    return REDIS_URL


@pytest.fixture(scope="session")
def digits_problem(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """sklearn digits + a tiny trained deployed model + its noisy failures (built once)."""
    from tests.digits_problem import make_digits_problem

    return make_digits_problem(tmp_path_factory.mktemp("digits_problem"))


@dataclass
class PrivatePostgres:
    """A Postgres server of the test's own (never the shared one), to stop and start."""

    folder: Path
    port: int
    runas: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.runas, "pg_ctl", "-D", str(self.folder / "data"), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under pytest's tmp folder: that one is private to root, and as root the server
    # runs as `postgres` (initdb refuses root).
    folder = Path(tempfile.mkdtemp(prefix="repair-pg-"))
    runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if runas:
        shutil.chown(folder, "postgres")
    subprocess.run(
        [*runas, "initdb", "-N", "-U", "postgres", "--auth=trust", "-D", str(folder / "data")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = PrivatePostgres(folder, port, runas)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)
