"""Assertions and set-ups shared by the upload, repair and client tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from api.db.models import Dataset, FailureBatch, JobStatus, Model, RepairJob
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


def succeeded_with_files(
    live_server: LiveServer, job_id: str, files: dict[str, bytes], **columns: object
) -> None:
    """Store `files` (name -> bytes) as artifacts of `job_id` and mark it succeeded; a column
    value that names one of the files becomes that file's storage key."""
    folder = f"results-{job_id}"
    (live_server.artifacts_root / folder).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (live_server.artifacts_root / folder / name).write_bytes(data)
    values = {
        c: f"{folder}/{v}" if isinstance(v, str) and v in files else v for c, v in columns.items()
    }
    with live_server.session_factory() as session:
        session.execute(
            sa.update(RepairJob)
            .where(RepairJob.id == uuid.UUID(job_id))
            .values(status=JobStatus.succeeded, finished_at=datetime.now(UTC), **values)
        )
        session.commit()
