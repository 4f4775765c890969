"""`/healthz` and `/readyz` over real HTTP."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.db.migrate import upgrade
from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings
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
