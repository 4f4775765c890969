"""Cheap polls: the job's ETag and `If-None-Match` -> 304 at the cost of one query, and
sessions that never outlive their handler (a download holds no connection)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from api.app import create_app
from api.db.jobs import transition
from api.db.models import JobStatus, RepairJob
from api.services.owners import create_owner
from api.settings import Settings
from tests.api.conftest import serve
from tests.api.seed import seed_job

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app_server(api_settings: Settings) -> Iterator[tuple[FastAPI, str]]:
    app = create_app(api_settings)
    with serve(app) as url:
        yield app, url


def _owner_with_job(app: FastAPI, **job: Any) -> tuple[str, uuid.UUID]:
    with app.state.session_factory() as session:
        created = create_owner(
            session, name=f"o-{uuid.uuid4().hex[:10]}", pepper=app.state.settings.auth_pepper
        )
        return created.api_key, seed_job(session, created.owner_id, **job)


def _client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_an_unchanged_job_answers_304_to_its_etag(app_server: tuple[FastAPI, str]) -> None:
    app, url = app_server
    key, job_id = _owner_with_job(app)
    with _client(url, key) as client:
        first = client.get(f"/v1/repairs/{job_id}")
        etag = first.headers["etag"]
        again = client.get(f"/v1/repairs/{job_id}", headers={"If-None-Match": etag})
        weak = client.get(f"/v1/repairs/{job_id}", headers={"If-None-Match": f"W/{etag}"})
    assert first.status_code == 200 and first.json()["id"] == str(job_id)
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    assert weak.status_code == 304


def test_a_changed_job_answers_200_with_a_new_etag(app_server: tuple[FastAPI, str]) -> None:
    app, url = app_server
    key, job_id = _owner_with_job(app, status=JobStatus.queued)
    with _client(url, key) as client:
        etag = client.get(f"/v1/repairs/{job_id}").headers["etag"]
        with app.state.session_factory() as session:
            assert transition(session, job_id, to=JobStatus.cancelled)
            session.commit()
        changed = client.get(f"/v1/repairs/{job_id}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json()["status"] == "cancelled"
    assert changed.headers["etag"] != etag


def test_an_etag_probe_of_another_owners_job_is_404(app_server: tuple[FastAPI, str]) -> None:
    app, url = app_server
    key, job_id = _owner_with_job(app)
    other_key, _ = _owner_with_job(app)
    with _client(url, key) as client:
        etag = client.get(f"/v1/repairs/{job_id}").headers["etag"]
    with _client(url, other_key) as client:
        probe = client.get(f"/v1/repairs/{job_id}", headers={"If-None-Match": etag})
        star = client.get(f"/v1/repairs/{job_id}", headers={"If-None-Match": "*"})
    assert probe.status_code == 404 and star.status_code == 404


def test_a_warm_304_poll_runs_exactly_one_query(app_server: tuple[FastAPI, str]) -> None:
    app, url = app_server
    key, job_id = _owner_with_job(app)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with _client(url, key) as client:
        etag = client.get(f"/v1/repairs/{job_id}").headers["etag"]  # warms the auth cache
        sa.event.listen(app.state.engine, "before_cursor_execute", record)
        try:
            poll = client.get(f"/v1/repairs/{job_id}", headers={"If-None-Match": etag})
        finally:
            sa.event.remove(app.state.engine, "before_cursor_execute", record)
    assert poll.status_code == 304
    assert len(statements) == 1, statements
    assert "repair_jobs" in statements[0]


def test_a_download_holds_no_connection_while_it_streams(
    app_server: tuple[FastAPI, str],
) -> None:
    app, url = app_server
    key, job_id = _owner_with_job(app, status=JobStatus.succeeded)
    store = app.state.store
    result_key = f"results/{job_id}/model.safetensors"
    path = store.path(result_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * (8 * 1024 * 1024))
    with app.state.session_factory() as session:
        session.execute(
            sa.update(RepairJob).where(RepairJob.id == job_id).values(result_model_key=result_key)
        )
        session.commit()
    with (
        _client(url, key) as client,
        client.stream("GET", f"/v1/repairs/{job_id}/model") as response,
    ):
        assert response.status_code == 200
        next(response.iter_bytes(64 * 1024))
        # The handler's session closed before the body started: nothing checked out.
        assert app.state.engine.pool.checkedout() == 0
