"""Infrastructure outages during a running job, on servers the test starts and stops itself
(never the machine's): they hand the job on and spend no attempt."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.db.migrate import upgrade
from api.db.models import JobStatus
from tests.conftest import PrivatePostgres
from tests.digits_problem import RepairProblem
from tests.worker.jobs import (
    add_job,
    get_job,
    seed_digits_model,
    tiny_config,
    wait_for,
    worker_settings_for,
)
from worker.context import WorkerContext, build_context
from worker.lease import claim
from worker.runner import Outcome, run_job

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def pg_ctx(private_postgres: PrivatePostgres, tmp_path: Path) -> Iterator[WorkerContext]:
    upgrade(private_postgres.url)
    # Lease 3 s: an outage of a few seconds outlasts it.
    settings = worker_settings_for(private_postgres.url, tmp_path / "artifacts", lease_seconds=3.0)
    context = build_context(settings)
    try:
        yield context
    finally:
        context.close()


def test_postgres_stopped_past_the_lease_mid_job_hands_it_on_without_spending_an_attempt(
    pg_ctx: WorkerContext, private_postgres: PrivatePostgres, digits_problem: RepairProblem
) -> None:
    seeded = seed_digits_model(pg_ctx.sessions, pg_ctx.store, digits_problem)
    job_id = add_job(pg_ctx.sessions, seeded, tiny_config(**{"search.epochs": 30}))
    outcome: list[Outcome] = []
    runner = threading.Thread(
        target=lambda: outcome.append(run_job(pg_ctx, job_id, worker="test/1")), daemon=True
    )
    runner.start()
    wait_for(lambda: get_job(pg_ctx.sessions, job_id).stage == "searching", timeout=90,
             what="the search")  # fmt: skip

    private_postgres.stop()
    # Down past the lease: the keeper cannot renew it and stops the run before it expires.
    down_until = time.monotonic() + 6.0
    while time.monotonic() < down_until and runner.is_alive():
        runner.join(timeout=0.2)
    private_postgres.start()
    runner.join(timeout=120)
    assert not runner.is_alive(), "run_job did not return after the database came back"
    assert outcome == [Outcome.handed_off]

    job = get_job(pg_ctx.sessions, job_id)
    assert (job.status, job.attempts, job.handoffs) == (JobStatus.queued, 0, 1)
    assert job.lease_token is None

    # Claimable at once by the next worker (no lease to wait out), on its first attempt.
    with pg_ctx.sessions() as session:
        lease = claim(session, job_id, owner="test/2", lease_seconds=60)
    assert lease is not None and (lease.attempt, lease.run) == (1, 2)
