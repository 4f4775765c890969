"""Reliability case 19 with a real Redis redelivery: a private redis-server, real Celery
workers and a visibility timeout of seconds (`worker.visibility_margin_seconds`), so
Redis hands an unacknowledged message to another worker while the test watches.

Two situations, set up at once on three workers (prefetch 1, acknowledged late) so that
their two visibility timeouts run side by side rather than one after the other:

- A worker killed (SIGKILL, its job process too) before it acknowledged job A: the
  lease, not Redis, says it is gone; the live worker's sweeper hands the job on and that
  worker finishes it from its checkpoint (the killed run spent its attempt). Redis
  delivers the dead worker's message again after the visibility timeout, and that
  delivery is a no-op: the job is done, one genotype row, no second run.
- A worker whose main process stalls (SIGSTOP) while its job process runs job B on,
  renewing the lease: the message is delivered again all the same (to the live worker),
  and that delivery is a no-op (the job is leased by someone alive); the job runs once.

A delivery never takes over a running job, even one whose lease expired: only the sweeper
re-queues those (docs/job-lifecycle.md), so a message Redis gives back late cannot start
a second run beside a slow first one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.db.models import Genotype, JobStatus, RepairJob
from api.db.session import make_engine, make_session_factory
from api.settings import BrokerSettings
from api.storage import ArtifactStore
from tests.digits_problem import RepairProblem
from tests.worker.jobs import (
    get_job,
    seed_digits_model,
    set_job,
    tiny_config,
    wait_for,
    worker_settings_for,
)
from tests.worker.processes import PrivateRedis, WorkerProcess
from tests.worker.rig import FINISHED, Rig
from worker.timing import time_limits

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

# Hard limit 90 s + margin 2 s: Redis gives a message back 92 s after its delivery. A
# smoke run takes seconds, but on a busy 2-core machine a job process may spend 10 s
# importing torch and a resumed run a minute; the lease (3 s) says a worker is gone.
TIMING = {
    "lease_seconds": 3.0,
    "phase_hard_seconds": 90,
    "soft_limit_margin_seconds": 30,
    "visibility_margin_seconds": 2,
}


def _in_second_epoch(job: RepairJob) -> bool:
    # Step 4 is in the second epoch, so the first epoch's search state is saved.
    return job.status in FINISHED or (job.stage == "searching" and job.step >= 4)


@pytest.fixture
def redelivery(
    worker_postgres_url: str, digits_problem: RepairProblem, tmp_path: Path
) -> Iterator[Rig]:
    server = PrivateRedis(tmp_path)
    server.start()
    root = tmp_path / "artifacts"
    root.mkdir()
    broker = BrokerSettings(url=server.url, queue="repair-redelivery")
    settings = worker_settings_for(worker_postgres_url, root, broker=broker, **TIMING)
    engine = make_engine(settings.database.url)
    sessions = make_session_factory(engine)
    rig = Rig(
        settings,
        sessions,
        seed_digits_model(sessions, ArtifactStore(root), digits_problem),
        tmp_path,
    )
    try:
        yield rig
    finally:
        for process in rig.workers:
            with contextlib.suppress(ProcessLookupError):  # a stopped one cannot stop
                os.killpg(process.process.pid, signal.SIGCONT)
            process.stop()
            print(f"--- worker {process.name} ---\n{process.log()[-6000:]}")  # shown on failure
        engine.dispose()
        server.stop()


def test_redis_redelivers_unacknowledged_messages_and_a_done_job_or_a_live_lease_makes_them_no_ops(
    redelivery: Rig,
) -> None:
    visibility = time_limits(redelivery.settings.worker)[2]
    assert visibility == 92  # seconds, not Redis's hour nor the service's 9 h
    workers = {w.name: w for w in redelivery.start_workers("a", "b", "c", ready_timeout=180)}

    def holder(job_id: uuid.UUID, *, what: str) -> tuple[WorkerProcess, RepairJob]:
        running = redelivery.wait(job_id, lambda j: j.status == JobStatus.running,
                                  timeout=120, what=what)  # fmt: skip
        assert running.lease_owner is not None
        return workers.pop(running.lease_owner.split("@")[0]), running

    # Job A goes to one worker, job B to another (each takes one message at a time and
    # acknowledges it when the job ends); the third stays idle and live. Sent together,
    # so that Redis gives both messages back at about the same time.
    killed = redelivery.submit(tiny_config(**{"search.epochs": 4, "search.steps_per_epoch": 3}))
    alive = redelivery.submit(tiny_config(**{"search.epochs": 200, "search.steps_per_epoch": 5}))
    first, _ = holder(killed, what="the claim")
    second, running = holder(alive, what="the second job's claim")
    # 2. A stalled main process: its job process runs on and renews the lease. The main
    # process only, before it could send the soft limit: the job runs on. Stopped before
    # the kill below, so that only the third worker's sweeper hands job A on.
    os.kill(second.process.pid, signal.SIGSTOP)
    (third,) = workers.values()

    # 1. Killed before acknowledging: the lease hands the job on, Redis the message.
    redelivery.wait(killed, _in_second_epoch, timeout=120, what="the search's second epoch")
    first.kill()
    job = redelivery.wait(killed, lambda j: j.status in FINISHED, timeout=240,
                          what="the job to finish on the live worker")  # fmt: skip
    assert job.status == JobStatus.succeeded, job.error
    assert f"sweeper: requeued {killed}" in third.log()

    # Both messages come back after the visibility timeout, both to the third worker.
    def delivered_again() -> bool:
        log = third.log()
        return f"job {killed} skipped: it has succeeded" in log and f"job {alive} skipped" in log

    wait_for(delivered_again, timeout=visibility + 120,
             what="Redis to deliver both unacknowledged messages again")  # fmt: skip

    # 1. The dead worker's message was a no-op: the job ran from its checkpoint, once.
    assert get_job(redelivery.sessions, killed).finished_at == job.finished_at  # no writes
    assert job.attempts == 2  # the killed run spent its attempt
    claims = redelivery.claimed_by(killed)
    assert claims[:2] == [first.name, third.name] and set(claims[1:]) == {third.name}
    # Any run after the second is a soft-limit handoff (a slow machine), never a failure.
    assert job.handoffs == len(claims) - 2
    with redelivery.sessions() as session:
        genotypes = session.scalar(
            sa.select(sa.func.count()).select_from(Genotype).where(Genotype.job_id == killed)
        )
    assert genotypes == 1

    # 2. The stalled worker's message was a no-op: the job is leased by someone alive.
    assert (
        f"job {alive} skipped: it is running under the lease of {running.lease_owner}, live"
        in third.log()
    )
    assert f"job {alive} claimed" not in third.log()
    assert f"sweeper: requeued {alive}" not in redelivery.logs()
    still = get_job(redelivery.sessions, alive)
    assert (still.status, still.attempts, still.lease_owner) == (
        JobStatus.running, 1, running.lease_owner
    )  # fmt: skip
    assert still.heartbeat_at is not None and running.heartbeat_at is not None
    assert still.heartbeat_at > running.heartbeat_at  # the job process renewed it meanwhile

    set_job(redelivery.sessions, alive, status=JobStatus.cancelling)
    done = redelivery.wait(alive, lambda j: j.status in FINISHED, timeout=60, what="the cancel")
    os.kill(second.process.pid, signal.SIGCONT)
    assert done.status == JobStatus.cancelled and done.attempts == 1
    assert redelivery.claimed_by(alive) == [second.name]
