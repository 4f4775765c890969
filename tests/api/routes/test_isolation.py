"""Owners see only their own resources: every route, generated from the OpenAPI spec.

Owner B calling any operation with owner A's ids gets 404 and none of A's data; no key,
a malformed key or a key in the query string gets 401. Keys are stored only as digests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.auth import key_digest
from api.db.models import ApiKey
from tests.api.conftest import LiveServer
from tests.api.seed import Seeded, seed_model

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]
# /metrics holds no owner data (counts, timings, worker names); `metrics.token` guards it.
PUBLIC = {"/healthz", "/readyz", "/metrics"}
CREATES_WITH_REFERENCE = {("POST", "/v1/models"), ("POST", "/v1/repairs")}
PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "errors"}


def _operations(client: httpx.Client) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    return [
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if path not in PUBLIC
    ]


def _fill(path: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        path = path.replace("{" + name + "}", value)
    return path


def _request(client: httpx.Client, method: str, url: str, body: dict[str, Any]) -> httpx.Response:
    if method == "GET":
        return client.get(url)
    if method == "DELETE":
        return client.delete(url)
    if url.endswith(("/v1/models", "/v1/datasets", "/failure-batches")):
        fields = {"dataset_id": body["dataset_id"]} if url.endswith("/v1/models") else {}
        return client.post(url, files={"file": ("x.safetensors", b"\0" * 16)}, data=fields)
    if url.endswith("/v1/repairs"):
        return client.post(url, json={"model_id": body["model_id"]})
    if url.endswith("/transfers"):
        return client.post(url, json={"dataset_id": body["dataset_id"]})
    return client.post(url)


@pytest.fixture
def two_owners(live_server: LiveServer, new_owner: NewOwner) -> tuple[str, Seeded, str]:
    a_id, a_key = new_owner()
    _b_id, b_key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, a_id)
    with live_server.client(a_key) as client:
        job = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)})
        assert job.status_code == 201, job.text
    return a_key, seeded, b_key


def test_another_owners_ids_answer_404_on_every_route(
    live_server: LiveServer, two_owners: tuple[str, Seeded, str]
) -> None:
    a_key, seeded, b_key = two_owners
    with live_server.client(a_key) as client:
        job_id = client.get("/v1/repairs").json()["data"][0]["id"]
    ids = {
        "dataset_id": str(seeded.dataset_id),
        "model_id": str(seeded.model_id),
        "batch_id": str(seeded.batch_ids[0]),
        "job_id": job_id,
    }
    body = {"dataset_id": ids["dataset_id"], "model_id": ids["model_id"]}
    checked = 0
    with live_server.client(b_key) as client:
        for method, path in _operations(client):
            # Operations that take one of A's ids: in the path, or in the body of a create.
            if "{" not in path and (method, path) not in CREATES_WITH_REFERENCE:
                continue
            response = _request(client, method, _fill(path, ids), body)
            assert response.status_code == 404, (method, path, response.text)
            problem = response.json()
            assert set(problem) == PROBLEM_KEYS and problem["code"] == "not_found"
            assert "seeded" not in response.text  # none of A's data
            checked += 1
    assert checked >= 15
    with live_server.client(a_key) as client:  # B's deletes removed nothing of A's
        for path in (f"/v1/datasets/{ids['dataset_id']}", f"/v1/models/{ids['model_id']}",
                     f"/v1/models/{ids['model_id']}/failure-batches/{ids['batch_id']}",
                     f"/v1/repairs/{job_id}"):  # fmt: skip
            assert client.get(path).status_code == 200, path


def test_list_routes_never_show_another_owners_rows(
    live_server: LiveServer, two_owners: tuple[str, Seeded, str]
) -> None:
    _a_key, seeded, b_key = two_owners
    with live_server.client(b_key) as client:
        for path in ("/v1/datasets", "/v1/models", "/v1/repairs"):
            body = client.get(path).json()
            assert body["data"] == [] and body["count"] == 0
        mixed = client.post(
            "/v1/repairs",
            json={"model_id": str(uuid.uuid4()), "failure_batch_ids": [str(seeded.batch_ids[0])]},
        )
    assert mixed.status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer rk_abcdefgh_" + "A" * 43},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "malformed", "unknown", "basic"],
)
def test_every_route_answers_401_without_a_valid_key(
    live_server: LiveServer, headers: dict[str, str]
) -> None:
    ids = {name: str(uuid.uuid4()) for name in ("dataset_id", "model_id", "batch_id", "job_id")}
    with live_server.client() as client:
        client.headers.update(headers)
        for method, path in _operations(client):
            response = _request(client, method, _fill(path, ids), ids)
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["code"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_key_in_the_query_string_is_not_accepted(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    _owner_id, key = new_owner()
    with live_server.client() as client:
        response = client.get("/v1/datasets", params={"api_key": key, "key": key})
    assert response.status_code == 401


def test_keys_are_stored_only_as_digests(live_server: LiveServer, new_owner: NewOwner) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        row = session.scalars(sa.select(ApiKey).where(ApiKey.owner_id == owner_id)).one()
        dumped = session.execute(
            sa.text("SELECT * FROM api_keys WHERE owner_id = :o"), {"o": owner_id}
        ).one()
    secret = key.split("_", 2)[2]
    assert all(secret not in str(value) for value in dumped)
    assert all(key not in str(value) for value in dumped)
    assert row.digest == key_digest(live_server.settings.auth_pepper, key)
    assert key.startswith(f"rk_{row.key_id}_")


def test_a_revoked_key_is_refused_within_the_auth_cache_ttl(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    import time

    from api.services.owners import revoke_key

    _owner_id, key = new_owner()
    ttl = live_server.settings.auth.cache_seconds
    with live_server.client(key) as client:
        assert client.get("/v1/datasets").status_code == 200
        with live_server.session_factory() as session:
            assert revoke_key(session, key_id=key.split("_")[1])
            session.commit()
        revoked_at = time.monotonic()
        # Served from the cache at most `ttl` after the revocation, refused from then on.
        codes = []
        while time.monotonic() - revoked_at < ttl + 0.5:
            codes.append(client.get("/v1/datasets").status_code)
            if codes[-1] == 401:
                break
        refused_after = time.monotonic() - revoked_at
    assert codes[-1] == 401, codes
    assert refused_after <= ttl + 0.2
    assert set(codes) <= {200, 401}
