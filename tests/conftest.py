"""Shared fixtures: a fresh Postgres database per test run, the local Redis, tiny tensors."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

PG_HOST = os.environ.get("REPAIR_TEST_PG_HOST", "127.0.0.1")
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:5432/postgres"
REDIS_URL = os.environ.get("REPAIR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


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
