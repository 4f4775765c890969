"""Assertions shared by the upload tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from api.db.models import Dataset, FailureBatch, Model
from tests.api.conftest import LiveServer


def temp_files(live_server: LiveServer) -> list[str]:
    tmp = live_server.artifacts_root / ".tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def owner_rows(live_server: LiveServer, owner_id: uuid.UUID) -> dict[str, int]:
    with live_server.session_factory() as session:
        return {
            model.__tablename__: session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.owner_id == owner_id)
            )
            or 0
            for model in (Dataset, Model, FailureBatch)
        }


def owner_files(live_server: LiveServer, owner_id: uuid.UUID) -> list[str]:
    folder = live_server.artifacts_root / str(owner_id)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def assert_nothing_left(
    live_server: LiveServer,
    owner_id: uuid.UUID,
    *,
    rows: dict[str, int] | None = None,
    files: int | None = None,
) -> None:
    """No temp files, no rows beyond `rows`, no stored files beyond `files` (default:
    one per row; seeded rows have none)."""
    expected = {"datasets": 0, "models": 0, "failure_batches": 0, **(rows or {})}
    assert temp_files(live_server) == []
    assert owner_rows(live_server, owner_id) == expected
    expected_files = sum(expected.values()) if files is None else files
    assert len(owner_files(live_server, owner_id)) == expected_files


@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, int]
    files: list[str]


def snapshot(live_server: LiveServer, owner_id: uuid.UUID) -> Snapshot:
    return Snapshot(owner_rows(live_server, owner_id), owner_files(live_server, owner_id))


def assert_unchanged(live_server: LiveServer, owner_id: uuid.UUID, before: Snapshot) -> None:
    """A failed request left no temp file, row or stored file behind."""
    assert temp_files(live_server) == []
    assert snapshot(live_server, owner_id) == before


def problem(response: object) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.headers["content-type"] == "application/problem+json", response.text
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "code", "errors"}
    assert body["status"] == response.status_code and body["detail"]
    return body  # type: ignore[no-any-return]
