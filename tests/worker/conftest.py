"""Fixtures of the worker tests: migrated databases (SQLite per test, Postgres per run),
an artifact store, the digits problem stored as a job's inputs, and the end-to-end stacks
(one shared by the session, private ones per test; see docs/testing.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.db.migrate import upgrade
from api.db.session import make_engine, make_session_factory
from api.settings import BrokerSettings, Settings
from api.storage import ArtifactStore
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from tests.api.conftest import scratch_database
from tests.digits_problem import RepairProblem
from tests.worker.jobs import SeededModel, seed_digits_model, worker_settings_for
from tests.worker.stack import Stack, Uploaded, running_stack


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


@pytest.fixture(scope="session")
def base_settings(
    worker_postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings of the e2e stacks; each stack puts its own queue in them."""
    root = tmp_path_factory.mktemp("e2e") / "artifacts"
    return worker_settings_for(
        worker_postgres_url, root, broker=BrokerSettings(url=redis_url, queue="unused")
    )


@pytest.fixture(scope="session")
def shared_stack(
    base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """One API server and one worker ("a", started by the first test that asks for it) for
    the whole session: a worker start imports torch, seconds of CPU each time."""
    # Its worker outlives tests that kill workers on the same database: sweeping (once at
    # its start, then not within a session), it cannot requeue their expired jobs onto
    # its own queue and take over what their second worker must resume.
    worker = base_settings.worker.model_copy(update={"sweep_seconds": 3600.0})
    settings = base_settings.model_copy(update={"worker": worker})
    with running_stack(settings, tmp_path_factory.mktemp("shared-stack"), shared=True) as s:
        yield s


@pytest.fixture
def stack(
    request: pytest.FixtureRequest, base_settings: Settings, tmp_path: Path
) -> Iterator[Stack]:
    """The shared stack; a test marked `private_stack` (one that kills, stops or adds
    workers) gets an API server and workers of its own, on a queue of its own."""
    if request.node.get_closest_marker("private_stack"):
        with running_stack(base_settings, tmp_path) as running:
            yield running
        return
    shared: Stack = request.getfixturevalue("shared_stack")
    yield shared
    # Shown by pytest when the test failed: what the shared worker did meanwhile.
    print(shared.worker_logs())


@pytest.fixture(scope="session")
def uploaded(
    shared_stack: Stack,
    digits_problem: RepairProblem,
    tmp_path_factory: pytest.TempPathFactory,
) -> Uploaded:
    """An owner with the digits dataset, deployed model and noisy failures, uploaded
    through the API as a user would (once a session: tests only read them). Private stacks
    share the database and artifacts, so the uploads serve them too."""
    files = tmp_path_factory.mktemp("uploads")
    write_npz_splits(files / "digits.npz", digits_problem.data)
    failures = digits_problem.failures
    write_npz_images(files / "gaussian_noise.npz", failures.images, failures.labels)
    owner_id, key = shared_stack.new_owner()
    with shared_stack.client(key) as client:
        dataset = client.upload_dataset(files / "digits.npz")
        model = client.upload_model(digits_problem.checkpoint, dataset_id=dataset["id"])
        client.upload_failures(model["id"], files / "gaussian_noise.npz")
    return Uploaded(key, owner_id, model["id"])
