"""`/healthz` and `/readyz` over real HTTP."""

from __future__ import annotations

import pytest

from tests.api.conftest import LiveServer

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
