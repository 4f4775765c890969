"""Engine and session factory built from the settings; nothing is created at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

# Postgres: a request never waits on a lock or a runaway query for ever
# (docs/architecture.md, api/).
_PG_OPTIONS = "-c statement_timeout=30000 -c lock_timeout=5000"
# SQLite: concurrent API threads and the worker wait for the write lock this long (ms).
_SQLITE_BUSY_TIMEOUT_MS = 5000


def ensure_sqlite_folder(url: str) -> None:
    """Create the folder of a SQLite file database (the embedded default: `var/`)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def make_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int | None = None,
    pool_timeout: float = 30.0,
    connect_timeout: int = 5,
) -> Engine:
    """An engine for `url` with the per-backend settings the service relies on.

    `pool_size` given: exactly that many connections, no overflow (the API, whose gate
    hands out no more slots than that; api/db/gate.py). None: SQLAlchemy's defaults
    (worker, CLI)."""
    ensure_sqlite_folder(url)
    kwargs: dict[str, Any] = {"echo": echo, "pool_pre_ping": True}
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    in_memory = backend == "sqlite" and parsed.database in (None, "", ":memory:")
    if not in_memory:  # in-memory SQLite has a per-thread pool without these knobs
        kwargs["pool_timeout"] = pool_timeout
        if pool_size is not None:
            kwargs.update(pool_size=pool_size, max_overflow=0)
    if backend == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False}
    elif backend == "postgresql":
        kwargs["connect_args"] = {"options": _PG_OPTIONS, "connect_timeout": connect_timeout}
    engine = sa.create_engine(url, **kwargs)
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # WAL lets readers (progress polls) proceed while the worker writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: handlers serialise rows after the service committed.
    return sessionmaker(bind=engine, expire_on_commit=False)
