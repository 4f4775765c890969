"""The dashboard's pages over real HTTP: the session cookie, CSRF, owner isolation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from api.db.models import JobStatus, RepairJob
from api.deps import SESSION_COOKIE
from tests.api.conftest import LiveServer
from tests.api.seed import seed_job

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]


@contextmanager
def _logged_in(live_server: LiveServer, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=60.0) as client:
        response = client.post("/ui/login", data={"key": key})
        assert response.status_code == 303 and response.headers["location"] == "/ui/"
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        yield client


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page)
    assert match, "the page carries its session's CSRF token"
    return match.group(1)


def test_pages_without_a_session_redirect_to_the_login_form(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        for path in ("/ui/", f"/ui/jobs/{uuid.uuid4()}", "/ui/datasets", "/ui/models"):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/ui/login"
        assert client.get("/ui/login").status_code == 200


def test_a_wrong_key_is_refused_and_sets_no_cookie(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        response = client.post("/ui/login", data={"key": "rk_aaaaaaaa_" + "x" * 43})
    assert response.status_code == 401 and "invalid" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_a_login_posted_from_another_site_is_refused(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    _, key = new_owner()
    with httpx.Client(base_url=live_server.url) as client:
        response = client.post(
            "/ui/login", data={"key": key}, headers={"Origin": "https://evil.example"}
        )
    assert response.status_code == 403 and "set-cookie" not in response.headers


def test_the_jobs_page_lists_the_owners_jobs_and_only_theirs(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    other_id, _ = new_owner()
    with live_server.session_factory() as session:
        mine = seed_job(session, owner_id, status=JobStatus.running)
        theirs = seed_job(session, other_id, status=JobStatus.running)
    with _logged_in(live_server, key) as client:
        page = client.get("/ui/")
        job = client.get(f"/ui/jobs/{mine}")
        foreign = client.get(f"/ui/jobs/{theirs}")
        foreign_api = client.get(f"/v1/repairs/{theirs}")
    assert page.status_code == 200 and str(mine) in page.text and str(theirs) not in page.text
    assert job.status_code == 200 and "data-live" in job.text
    assert foreign.status_code == 404 and str(theirs) in foreign.text  # only the id asked for
    assert "running" not in foreign.text.split("<main>")[1]
    assert foreign_api.status_code == 404


def test_a_job_page_links_every_compared_variants_model(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        job_id = seed_job(session, owner_id, status=JobStatus.succeeded)
        job = session.get_one(RepairJob, job_id)
        job.variants, job.variant_models = ["CF-DARTS", "CutMix"], {"CutMix": "0" * 64}
        job.result_model_key = f"{owner_id}/m.safetensors"
        session.commit()
    with _logged_in(live_server, key) as client:
        page = client.get(f"/ui/jobs/{job_id}")
    assert page.status_code == 200
    assert f'href="/v1/repairs/{job_id}/model?variant=CutMix"' in page.text
    assert "model?variant=CF-DARTS" not in page.text  # the primary is the plain download


def test_an_unsafe_request_by_cookie_needs_the_sessions_csrf_token(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        job_id = seed_job(session, owner_id, status=JobStatus.queued)
    with _logged_in(live_server, key) as client:
        token = _csrf(client.get(f"/ui/jobs/{job_id}").text)
        forged = client.post(f"/v1/repairs/{job_id}/cancel")
        wrong = client.post(f"/v1/repairs/{job_id}/cancel", headers={"X-CSRF-Token": "0" * 64})
        still = client.get(f"/v1/repairs/{job_id}").json()["status"]
        done = client.post(f"/v1/repairs/{job_id}/cancel", headers={"X-CSRF-Token": token})
    assert forged.status_code == 403 and forged.json()["code"] == "csrf_failed"
    assert wrong.status_code == 403 and still == "queued"
    assert done.status_code == 200 and done.json()["status"] == "cancelled"


def test_pages_forbid_framing_and_foreign_scripts(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    _, key = new_owner()
    with _logged_in(live_server, key) as client:
        page = client.get("/ui/datasets")
        script = client.get("/ui/static/dashboard.js")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert 'data-api-form="/v1/datasets"' in page.text
    assert script.status_code == 200 and "EventSource" in script.text
