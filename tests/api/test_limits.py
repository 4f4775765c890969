"""Fair limits over real HTTP: each answers 429 with Retry-After and stores nothing;
GCRA in memory and in Redis; limits shared across two API processes through Redis."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from api.app import create_app
from api.db.migrate import upgrade
from api.db.models import Dataset, RepairJob
from api.limits.gcra import Rate
from api.limits.memory import MemoryStore
from api.limits.redis import RedisStore
from api.services.owners import create_owner
from api.settings import (
    ArtifactSettings,
    BrokerSettings,
    DatabaseSettings,
    LimitSettings,
    Settings,
    UploadLimits,
)
from tests.api.conftest import serve
from tests.api.payloads import npz_dataset
from tests.api.seed import seed_model

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BAD_KEY = "rk_zzzzzzzz_" + "B" * 43


def _settings(tmp_path: Path, *, broker: str = "filesystem://", **limits: Any) -> Settings:
    url = f"sqlite:///{tmp_path / 'repair.db'}"
    if not (tmp_path / "repair.db").exists():
        upgrade(url)
    uploads = limits.pop("uploads", UploadLimits())
    return Settings(
        database=DatabaseSettings(url=url),
        broker=BrokerSettings(url=broker, folder=tmp_path / "broker"),
        artifacts=ArtifactSettings(root=tmp_path / "artifacts"),
        uploads=uploads,
        limits=LimitSettings(**limits),
    )


@contextmanager
def _server(settings: Settings) -> Iterator[tuple[FastAPI, httpx.Client]]:
    app = create_app(settings)
    with serve(app) as url, httpx.Client(base_url=url, timeout=180) as client:
        yield app, client


def _owner(app: FastAPI) -> tuple[uuid.UUID, str]:
    with app.state.session_factory() as session:
        created = create_owner(
            session, name=f"o-{uuid.uuid4().hex[:8]}", pepper=app.state.settings.auth_pepper
        )
    return created.owner_id, created.api_key


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_job_creation_rate_answers_429_with_retry_after_and_creates_no_job(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path, jobs_per_minute=1, jobs_burst=2)
    with _server(settings) as (app, client):
        owner_id, key = _owner(app)
        with app.state.session_factory() as session:
            seeded = seed_model(session, owner_id)
        body = {"model_id": str(seeded.model_id)}
        codes = [client.post("/v1/repairs", json=body, headers=_auth(key)) for _ in range(3)]
        with app.state.session_factory() as session:
            jobs = session.scalar(sa.select(sa.func.count()).select_from(RepairJob))
    assert [r.status_code for r in codes] == [201, 201, 429], codes[-1].text
    refused = codes[-1]
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert jobs == 2


def test_upload_rate_answers_429_and_stores_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path, uploads_per_minute=1, uploads_burst=1)
    with _server(settings) as (app, client):
        _owner_id, key = _owner(app)
        files = {"file": ("d.npz", npz_dataset())}
        first = client.post("/v1/datasets", files=files, headers=_auth(key))
        second = client.post(
            "/v1/datasets", files={"file": ("e.npz", npz_dataset(4))}, headers=_auth(key)
        )
        with app.state.session_factory() as session:
            datasets = session.scalar(sa.select(sa.func.count()).select_from(Dataset))
    assert first.status_code == 201, first.text
    assert second.status_code == 429 and second.json()["code"] == "rate_limited"
    assert second.headers["retry-after"]
    assert datasets == 1
    temp = settings.artifacts.root / "tmp"
    assert not temp.exists() or not any(temp.iterdir())


def test_failed_auth_limit_answers_429_then_even_a_valid_key_waits(tmp_path: Path) -> None:
    settings = _settings(tmp_path, failed_auth_per_minute=60, failed_auth_burst=3)
    with _server(settings) as (app, client):
        _owner_id, key = _owner(app)
        bad = [client.get("/v1/datasets", headers=_auth(BAD_KEY)).status_code for _ in range(3)]
        blocked = client.get("/v1/datasets", headers=_auth(BAD_KEY))
        valid = client.get("/v1/datasets", headers=_auth(key))
        wait = int(valid.headers["retry-after"])
        assert wait <= 2
        deadline = time.monotonic() + wait + 1.0
        while (after := client.get("/v1/datasets", headers=_auth(key))).status_code == 429:
            assert time.monotonic() < deadline, after.text
    assert bad == [401, 401, 401]
    assert blocked.status_code == 429 and blocked.json()["code"] == "too_many_failed_auth"
    assert valid.status_code == 429
    assert after.status_code == 200


def _hold_upload(url: str, key: str) -> socket.socket:
    """An upload whose body stops half way: it holds its slot until the socket closes."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.npz"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(
        (
            "POST /v1/datasets HTTP/1.1\r\nHost: test\r\n"
            f"Authorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Content-Length: 100000\r\n\r\n"
        ).encode()
        + head
        + b"\0" * 1000
    )
    return sock


def test_per_owner_and_total_upload_caps_answer_429(tmp_path: Path) -> None:
    caps = UploadLimits(max_concurrent_per_owner=1, max_concurrent_total=2)
    settings = _settings(tmp_path, uploads=caps)
    app = create_app(settings)
    with serve(app) as url, httpx.Client(base_url=url, timeout=180) as client:
        store: MemoryStore = app.state.limits.store
        (a, key_a), (_b, key_b), (_c, key_c) = _owner(app), _owner(app), _owner(app)
        held = [_hold_upload(url, key_a)]
        try:
            deadline = time.monotonic() + 10
            while store.held(a) < 1:
                assert time.monotonic() < deadline
            files = {"file": ("d.npz", npz_dataset())}
            same_owner = client.post("/v1/datasets", files=files, headers=_auth(key_a))
            held.append(_hold_upload(url, key_b))
            while store.held() < 2:
                assert time.monotonic() < deadline
            full = client.post("/v1/datasets", files=files, headers=_auth(key_c))
        finally:
            for sock in held:
                sock.close()
        while store.held() > 0:
            assert time.monotonic() < deadline + 10
        freed = client.post("/v1/datasets", files=files, headers=_auth(key_c))
    assert same_owner.status_code == 429 and same_owner.json()["code"] == "too_many_uploads"
    assert full.status_code == 429 and full.json()["code"] == "uploads_busy"
    assert same_owner.headers["retry-after"] == full.headers["retry-after"] == "30"
    assert freed.status_code == 201, freed.text


def test_limits_hold_across_two_processes_with_redis(tmp_path: Path, redis_url: str) -> None:
    prefix = f"test-lim-{uuid.uuid4().hex[:8]}:"
    settings = _settings(
        tmp_path, broker=redis_url, key_prefix=prefix, failed_auth_burst=1,
        failed_auth_per_minute=1,
    )  # fmt: skip
    with _server(settings) as (_a, one), _server(settings) as (_b, two):
        first = one.get("/v1/datasets", headers=_auth(BAD_KEY))
        second = two.get("/v1/datasets", headers=_auth(BAD_KEY))
    assert first.status_code == 401
    assert second.status_code == 429, second.text


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_gcra_lets_the_burst_pass_then_one_per_interval(backend: str, redis_url: str) -> None:
    rate = Rate(per_minute=600, burst=3)  # one every 100 ms

    async def run() -> tuple[list[float], float]:
        store = (
            MemoryStore()
            if backend == "memory"
            else RedisStore(redis_url, prefix=f"test-gcra-{uuid.uuid4().hex[:8]}:")
        )
        try:
            waits = [await store.hit("k", rate) for _ in range(4)]
            await anyio.sleep(waits[-1] + 0.02)  # waiting out the Retry-After is the contract
            again = await store.hit("k", rate)
        finally:
            await store.close()
        return waits, again

    waits, again = anyio.run(run)
    assert waits[:3] == [0, 0, 0]
    assert 0.05 < waits[3] <= 0.1
    assert again == 0
