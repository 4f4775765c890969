"""Reliability case 28 on real Postgres: a finished job never moves again. Every path
that could set one running (the transition table, the worker's claim, a cancel) touches
no row, and the API answers 409 to a cancel of a succeeded or failed job."""

from __future__ import annotations

import uuid

import pytest

from api.db.jobs import TERMINAL_STATUSES, transition
from api.db.models import JobStatus, RepairJob
from api.services.owners import create_owner
from tests.api.conftest import LiveServer
from tests.api.seed import seed_job
from worker.lease import claim

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_a_finished_job_is_never_moved_back_to_running_by_any_path(
    live_server: LiveServer, status: JobStatus
) -> None:
    with live_server.session_factory() as session:
        owner = create_owner(
            session, name=f"t-{uuid.uuid4().hex[:8]}", pepper=live_server.settings.auth_pepper
        )
        job_id = seed_job(session, owner.owner_id, status=status)
        version = session.get_one(RepairJob, job_id).version
        # The table has no way out of a finished status, even when asked explicitly.
        for target in JobStatus:
            assert not transition(session, job_id, to=target, from_=frozenset({status}))
        assert not transition(session, job_id, to=JobStatus.running)
        # The worker's claim is the only path to running: it refuses too.
        assert claim(session, job_id, owner="test/1", lease_seconds=60) is None
        session.commit()
    with live_server.client(owner.api_key) as client:
        cancelled = client.post(f"/v1/repairs/{job_id}/cancel")
        if status == JobStatus.cancelled:  # cancel is idempotent: unchanged, 200
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        else:
            assert cancelled.status_code == 409 and cancelled.json()["code"] == "job_finished"
        assert client.get(f"/v1/repairs/{job_id}").json()["status"] == status.value
    with live_server.session_factory() as session:
        job = session.get_one(RepairJob, job_id)
        assert (job.status, job.version, job.attempts) == (status, version, 0)
