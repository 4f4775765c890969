"""With the database or the broker unreachable the API answers 503, never 500, and
liveness stays up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from api.app import create_app
from api.queue import CeleryJobQueue
from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings
from tests.api.conftest import serve

pytestmark = pytest.mark.integration

KEY = "rk_abcdefgh_" + "A" * 43


def test_an_unreachable_database_answers_503_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(
        database=DatabaseSettings(url="postgresql+psycopg://postgres@127.0.0.1:1/none"),
        broker=BrokerSettings(url="filesystem://", folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
    )
    app = create_app(settings, CeleryJobQueue(settings.broker))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        health = client.get("/healthz")
        ready = client.get("/readyz")
        listed = client.get("/v1/datasets", headers={"Authorization": f"Bearer {KEY}"})
    assert health.status_code == 200
    assert ready.status_code == 503 and "database" in ready.json()["detail"]
    assert "broker" not in ready.json()["detail"]
    assert listed.status_code == 503
    assert listed.json()["code"] == "database_unavailable"
    assert listed.headers["retry-after"] == "5"


def test_an_unreachable_broker_makes_readyz_answer_503(tmp_path: Path) -> None:
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'repair.db'}"),
        broker=BrokerSettings(url="redis://127.0.0.1:1/0"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
    )
    app = create_app(settings, CeleryJobQueue(settings.broker))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["detail"] == "not ready: broker unreachable"
