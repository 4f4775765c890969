"""Alembic: one head, upgrade -> downgrade -> upgrade on Postgres and SQLite, no drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from api.db import models  # noqa: F401  (registers the tables)
from api.db.base import Base
from api.db.migrate import alembic_config, downgrade, upgrade
from tests.api.conftest import scratch_database


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    with scratch_database(postgres_url, "repair_migr") as url:
        yield url


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _drift(url: str) -> list[object]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def _round_trip(url: str) -> None:
    upgrade(url)
    assert _tables(url) == set(Base.metadata.tables)
    downgrade(url, "base")
    assert _tables(url) == set()
    upgrade(url)
    assert _tables(url) == set(Base.metadata.tables)
    assert _drift(url) == []


def test_migrations_have_a_single_head() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(script.get_heads()) == 1


@pytest.mark.integration
def test_postgres_upgrade_downgrade_upgrade_leaves_no_drift(fresh_postgres_url: str) -> None:
    _round_trip(fresh_postgres_url)


def test_sqlite_upgrade_downgrade_upgrade_leaves_no_drift(tmp_path: Path) -> None:
    _round_trip(f"sqlite:///{tmp_path / 'repair.db'}")


def test_migrations_run_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    upgrade(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    assert _tables(f"sqlite:///{tmp_path / 'elsewhere.db'}") == set(Base.metadata.tables)


def test_sqlite_engine_enforces_foreign_keys_and_uses_wal(tmp_path: Path) -> None:
    from api.db.session import make_engine

    url = f"sqlite:///{tmp_path / 'fk.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
            with pytest.raises(sa.exc.IntegrityError):
                conn.execute(
                    sa.text(
                        "INSERT INTO api_keys (id, owner_id, key_id, digest, created_at) "
                        "VALUES ('a', 'nobody', 'k', 'd', '2026-01-01')"
                    )
                )
    finally:
        engine.dispose()


def test_timestamps_come_back_timezone_aware_on_sqlite(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from api.db.models import Owner
    from api.db.session import make_engine

    url = f"sqlite:///{tmp_path / 'tz.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            owner = Owner(name="tz", created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
            session.add(owner)
            session.commit()
            session.expire_all()
            assert session.get(Owner, owner.id).created_at == datetime(  # type: ignore[union-attr]
                2026, 1, 2, 3, 4, 5, tzinfo=UTC
            )
    finally:
        engine.dispose()
