"""Fixtures of the worker tests: migrated databases (SQLite per test, Postgres per run),
an artifact store, and the digits problem stored as a job's inputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.db.migrate import upgrade
from api.db.session import make_engine, make_session_factory
from api.storage import ArtifactStore
from tests.api.conftest import scratch_database
from tests.digits_problem import RepairProblem
from tests.worker.jobs import SeededModel, seed_digits_model


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'repair.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def worker_postgres_url(postgres_url: str) -> Iterator[str]:
    # A database of its own: the session's `postgres_url` stays empty.
    with scratch_database(postgres_url, "repair_worker") as url:
        upgrade(url)
        yield url


@pytest.fixture
def sessions(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sqlite_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def seeded(
    sessions: sessionmaker[Session], store: ArtifactStore, digits_problem: RepairProblem
) -> SeededModel:
    return seed_digits_model(sessions, store, digits_problem)
