"""`/healthz` and `/readyz` over real HTTP."""

from __future__ import annotations

import logging
import os
import pwd
import time
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.db.migrate import upgrade
from api.settings import (
    ArtifactSettings,
    BrokerSettings,
    DatabaseSettings,
    SandboxSettings,
    Settings,
)
from api.uploads.sandbox import run_sandboxed_with_confinement
from api.uploads.validation import probe
from tests.api.conftest import LiveServer, serve
from tests.conftest import PrivatePostgres

pytestmark = pytest.mark.integration


def test_healthz_answers_without_a_key(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_reports_database_and_broker_reachable(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_unknown_route_answers_a_problem_document(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and body["code"] == "not_found" and body["detail"]


def test_wrong_method_answers_405_as_a_problem_document(live_server: LiveServer) -> None:
    with live_server.client() as client:
        response = client.delete("/v1/datasets")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_readyz_fails_while_a_private_postgres_is_down_and_recovers(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    upgrade(private_postgres.url)
    settings = Settings(
        database=DatabaseSettings(url=private_postgres.url),
        broker=BrokerSettings(url="filesystem://", folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
    )
    with serve(create_app(settings)) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/readyz").status_code == 200
        private_postgres.stop()
        started = time.monotonic()
        down = client.get("/readyz")
        took = time.monotonic() - started
        assert down.status_code == 503, down.text
        assert down.json()["errors"] == [{"component": "database", "status": "unreachable"}]
        assert down.headers["retry-after"]
        assert took < 4.0
        assert client.get("/healthz").status_code == 200
        private_postgres.start()
        assert client.get("/readyz").status_code == 200


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_readyz_says_saturated_when_no_database_slot_frees(
    anyio_backend: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'repair.db'}"
    upgrade(url)
    settings = Settings(
        database=DatabaseSettings(url=url, pool_size=1, ready_timeout_seconds=0.2),
        broker=BrokerSettings(url="filesystem://", folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        async with app.state.gate.session():
            busy = await client.get("/readyz")
        ready = await client.get("/readyz")
    assert busy.status_code == 503
    assert busy.json()["errors"] == [{"component": "database", "status": "saturated"}]
    assert ready.status_code == 200


def _embedded(tmp_path: Path, **sandbox: object) -> Settings:
    url = f"sqlite:///{tmp_path / 'repair.db'}"
    upgrade(url)
    return Settings(
        database=DatabaseSettings(url=url),
        broker=BrokerSettings(url="filesystem://", folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
        sandbox=SandboxSettings(**sandbox),
    )


def _child_really_runs_as() -> tuple[int, bool]:
    """(uid, network cut) of an upload child, asked of a child directly."""
    _, got = run_sandboxed_with_confinement(
        probe, memory_bytes=2**32, cpu_seconds=30, timeout_seconds=30
    )
    return got.uid, got.network_isolated


def test_readyz_reports_the_confinement_upload_children_really_get(tmp_path: Path) -> None:
    uid, isolated = _child_really_runs_as()
    with serve(create_app(_embedded(tmp_path))) as url, httpx.Client(base_url=url) as client:
        response = client.get("/readyz", timeout=60)
    assert response.status_code == 200, response.text  # not required: reported only
    assert response.json()["sandbox"] == {
        "user": pwd.getpwuid(uid).pw_name,
        "network": "isolated" if isolated else "shared",
        "confined": uid != 0 and isolated,
    }


def test_readyz_fails_saying_why_while_required_confinement_is_missing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uid, isolated = _child_really_runs_as()
    confined = uid != 0 and isolated
    settings = _embedded(tmp_path, require_confinement=True)
    with (
        caplog.at_level(logging.WARNING, logger="api.routes.health"),
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url) as client,
    ):
        response = client.get("/readyz", timeout=60)
        again = client.get("/readyz", timeout=60)  # the host's answer is kept, not re-probed
    assert again.status_code == response.status_code
    if confined:
        assert response.status_code == 200, response.text
        assert response.json()["checks"]["sandbox"] == "ok"
        return
    # This project's development host: the interpreter is under /root (0700), so a root
    # API's children cannot drop to `nobody` and run as root.
    assert response.status_code == 503, response.text
    body = response.json()
    assert {"component": "sandbox", "status": "unconfined"} in body["errors"]
    assert response.headers["retry-after"]
    said = [r.getMessage() for r in caplog.records if "sandbox is not confined" in r.getMessage()]
    assert said, caplog.text
    assert f"children run as {pwd.getpwuid(uid).pw_name}" in said[0]
    if uid == 0 and os.geteuid() == 0:
        assert "cannot read" in said[0] or "no user" in said[0]  # why it kept root
