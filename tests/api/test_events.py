"""The job event stream over real HTTP: stage changes, progress and the final state in
order, resuming from Last-Event-ID, 404 for an unknown job, 429 past the stream cap; and
the client's watch on the stream, falling back to ETag polls."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from api.app import create_app
from api.db.migrate import upgrade
from api.db.models import JobStatus, RepairJob
from api.services.owners import create_owner
from api.settings import (
    ArtifactSettings,
    BrokerSettings,
    DatabaseSettings,
    EventSettings,
    Settings,
)
from repairctl.client import RepairClient, ServerEvent, parse_sse
from tests.api.conftest import serve
from tests.api.seed import seed_job
from tests.worker.jobs import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[FastAPI, str, str, uuid.UUID]]:
    url = f"sqlite:///{tmp_path / 'repair.db'}"
    upgrade(url)
    settings = Settings(
        database=DatabaseSettings(url=url),
        broker=BrokerSettings(url="filesystem://", folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
        events=EventSettings(poll_seconds=0.05, max_streams_per_owner=1),
    )
    app = create_app(settings)
    with app.state.session_factory() as session:
        created = create_owner(session, name="o", pepper=settings.auth_pepper)
        job_id = seed_job(session, created.owner_id, status=JobStatus.running)
    with serve(app) as base:
        yield app, base, created.api_key, job_id


def _write(app: FastAPI, job_id: uuid.UUID, **values: Any) -> None:
    """What the worker's fenced writes do: change the row and bump its version."""
    with app.state.session_factory() as session:
        session.execute(
            sa.update(RepairJob)
            .where(RepairJob.id == job_id)
            .values(version=RepairJob.version + 1, **values)
        )
        session.commit()


def _client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_the_stream_delivers_stage_changes_progress_and_the_final_state(
    server: tuple[FastAPI, str, str, uuid.UUID],
) -> None:
    app, base, key, job_id = server
    # Each write waits for the event of the previous one: no change is coalesced away.
    writes = iter(
        [
            {"stage": "selecting", "progress": 5.0},
            {"progress": 20.0, "eta_seconds": 30.0, "metrics": {"loss": 1.5}},
            {"stage": "searching", "progress": 40.0},
            {"status": JobStatus.succeeded, "progress": 100.0},
        ]
    )
    seen: list[ServerEvent] = []
    with _client(base, key) as client, client.stream("GET", f"/v1/repairs/{job_id}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for event in parse_sse(r.iter_lines()):
            seen.append(event)
            if event.event == "end":
                break
            if (values := next(writes, None)) is not None:
                _write(app, job_id, **values)
    kinds = [e.event for e in seen]
    assert kinds == ["stage", "stage", "progress", "stage", "stage", "end"], kinds
    assert seen[2].data["metrics"] == {"loss": 1.5} and seen[2].data["eta_seconds"] == 30.0
    assert seen[3].data["stage"] == "searching"
    assert seen[-1].data["status"] == "succeeded" and seen[-1].data["id"] == str(job_id)
    versions = [int(e.id or 0) for e in seen[:-1]]
    assert versions == sorted(versions)


def test_the_stream_resumes_from_last_event_id(
    server: tuple[FastAPI, str, str, uuid.UUID],
) -> None:
    app, base, key, job_id = server
    with _client(base, key) as client:
        with client.stream("GET", f"/v1/repairs/{job_id}/events") as r:
            first = next(parse_sse(r.iter_lines()))
        # One stream per owner here: the server frees the first one's place once it has
        # seen the disconnect, and a second stream opened before that is refused (429).
        wait_for(lambda: app.state.streams.total == 0, timeout=10, what="the first stream's close")
        headers = {"Last-Event-ID": first.id or ""}
        with client.stream("GET", f"/v1/repairs/{job_id}/events", headers=headers) as r:
            assert r.status_code == 200
            _write(app, job_id, progress=50.0)
            resumed = next(parse_sse(r.iter_lines()))
    assert resumed.event == "progress"  # the snapshot already seen is not sent again
    assert int(resumed.id or 0) > int(first.id or 0)


def test_an_unknown_job_is_a_404_problem_and_the_cap_answers_429(
    server: tuple[FastAPI, str, str, uuid.UUID],
) -> None:
    _app, base, key, job_id = server
    with _client(base, key) as client:
        unknown = client.get(f"/v1/repairs/{uuid.uuid4()}/events")
        with client.stream("GET", f"/v1/repairs/{job_id}/events") as open_one:
            # Keep the iterator: dropping it would close the stream.
            events = parse_sse(open_one.iter_lines())
            next(events)
            capped = client.get(f"/v1/repairs/{job_id}/events")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"
    assert capped.status_code == 429 and capped.headers["retry-after"]


def test_client_watch_uses_the_stream_and_falls_back_to_etag_polls() -> None:
    job = {"id": "j", "status": "succeeded", "progress": 100.0}
    stream_body = (
        ": ping\n\nevent: stage\nid: 3\ndata: "
        + json.dumps({**job, "status": "running"})
        + "\n\nevent: end\nid: 4\ndata: "
        + json.dumps(job)
        + "\n\n"
    )
    polls: list[str | None] = []

    def with_stream(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/repairs/j/events"
        return httpx.Response(200, text=stream_body, headers={"content-type": "text/event-stream"})

    def without_stream(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(404, json={"code": "not_found", "detail": "no route"})
        polls.append(request.headers.get("if-none-match"))
        if len(polls) == 1:
            return httpx.Response(200, json={**job, "status": "running"}, headers={"etag": '"v1"'})
        if len(polls) == 2:
            return httpx.Response(304, headers={"etag": '"v1"'})
        return httpx.Response(200, json=job, headers={"etag": '"v2"'})

    updates: list[dict[str, Any]] = []
    streamed = RepairClient("http://x", "k", transport=httpx.MockTransport(with_stream))
    assert streamed.watch("j", on_update=updates.append) == job
    assert [u["status"] for u in updates] == ["running", "succeeded"]
    polled = RepairClient("http://x", "k", transport=httpx.MockTransport(without_stream))
    assert polled.watch("j", interval=0) == job
    assert polls == [None, '"v1"', '"v1"']
