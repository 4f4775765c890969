"""Worker faults of docs/job-lifecycle.md, with real processes: Celery workers on Redis,
job state in Postgres, jobs seeded straight into the database (no API).

- 22. Poison jobs: a pipeline that raises deterministically, and a job process that dies
  on every attempt, end `failed` with their error class after at most `max_attempts`
  attempts; nothing is delivered again after that.
- 21. SIGTERM to a worker mid-job (a deploy): the job hands itself back to the queue at
  once, spending no attempt, the worker exits as soon as it has (not after its whole
  soft-shutdown grace), and a restarted worker resumes the job from its checkpoint.
- 23. Time limits: at the soft limit a run checkpoints and hands on (a job longer than
  one run resumes across runs), up to `max_handoffs`; a run that does not stop is killed
  at the hard limit and fails `TimeLimitExceeded`; the worker takes the next job.
- 29. A job process killed (the test-only fault point) between publishing its result
  files and committing their rows: the next attempt finishes the job, no row names a
  missing file, and the upkeep sweep removes the dead attempt's files.
- 24. A private Redis restarted mid-job: the worker's job process hands the job on, and
  it finishes on its first attempt.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.db.models import FailureBatch, JobStatus, RepairJob
from api.db.session import make_engine, make_session_factory
from api.queue import CeleryJobQueue
from api.services.orphans import referenced_keys
from api.services.upkeep import run_upkeep
from api.settings import BrokerSettings, Settings, UpkeepSettings
from api.storage import ArtifactStore
from repair_core.datasets.ingest.npz import write_npz_images
from tests.digits_problem import RepairProblem
from tests.worker.jobs import (
    SeededModel,
    get_job,
    seed_digits_model,
    tiny_config,
    wait_for,
    worker_settings_for,
)
from tests.worker.processes import PrivateRedis, forget_queue
from tests.worker.rig import FINISHED, Rig

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

# Far longer than any test waits: the job is still running when the fault hits it.
LONG_SEARCH = tiny_config(**{"search.epochs": 200, "search.steps_per_epoch": 5})


@pytest.fixture(scope="module")
def module_settings(
    worker_postgres_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    root = tmp_path_factory.mktemp("faults") / "artifacts"
    root.mkdir()
    return worker_settings_for(
        worker_postgres_url, root, broker=BrokerSettings(url=redis_url, queue="unused")
    )


@pytest.fixture(scope="module")
def module_seeded(module_settings: Settings, digits_problem: RepairProblem) -> SeededModel:
    engine = make_engine(module_settings.database.url)
    try:
        store = ArtifactStore(module_settings.artifacts.root)
        return seed_digits_model(make_session_factory(engine), store, digits_problem)
    finally:
        engine.dispose()


@pytest.fixture
def rig(module_settings: Settings, module_seeded: SeededModel, tmp_path: Path) -> Iterator[Rig]:
    queue = f"test-faults-{uuid.uuid4().hex[:10]}"
    broker = BrokerSettings(url=module_settings.broker.url, queue=queue)
    settings = module_settings.model_copy(update={"broker": broker})
    engine = make_engine(settings.database.url)
    rig = Rig(settings, make_session_factory(engine), module_seeded, tmp_path)
    try:
        yield rig
    finally:
        for process in rig.workers:
            process.stop()
            print(f"--- worker {process.name} ---\n{process.log()[-6000:]}")  # shown on failure
        engine.dispose()
        forget_queue(settings.broker.url, queue)


def _nothing_to_repair(rig: Rig, problem: RepairProblem) -> SeededModel:
    """The seeded model with a failure batch of clean test images it classifies correctly:
    real input the pipeline can only reject ("nothing to repair"), after loading it."""
    deployed = problem.deployed().model.eval()
    images, labels = problem.data.test.images, problem.data.test.labels
    right = deployed(images.float() / 255).argmax(1) == labels
    assert int(right.sum()) >= 8
    store = ArtifactStore(rig.settings.artifacts.root)
    with rig.sessions() as session:
        original = session.get_one(FailureBatch, rig.seeded.batch_id)
        key = store.new_key(rig.seeded.owner_id, ".npz")
        write_npz_images(store.path(key), images[right][:32], labels[right][:32])
        batch = FailureBatch(
            owner_id=original.owner_id, model_id=original.model_id, name="clean.npz",
            original_filename="clean.npz", source_format="npz", storage_key=key,
            accepted=32, rejected=[], sha256="0" * 64, size_bytes=1,
        )  # fmt: skip
        session.add(batch)
        session.commit()
        return SeededModel(rig.seeded.owner_id, rig.seeded.model_id, batch.id)


def test_a_job_whose_pipeline_rejects_its_input_fails_once_and_is_never_run_again(
    rig: Rig, digits_problem: RepairProblem
) -> None:
    clean = _nothing_to_repair(rig, digits_problem)
    rig.start_worker("a")
    poison = rig.submit(inputs=clean, max_attempts=3)
    job = rig.finished(poison)
    assert job.status == JobStatus.failed and job.error_type == "RepairInputError", job.error
    assert "nothing to repair" in (job.error or "")
    assert job.attempts == 1

    # Its message again (a redelivery), then a good job behind it on the same worker:
    # by the time that one is done, the duplicate was seen and skipped.
    queue = CeleryJobQueue(rig.settings.broker)
    try:
        queue.enqueue(poison)
    finally:
        queue.close()
    good = rig.submit(tiny_config(), max_attempts=3)
    assert rig.finished(good).status == JobStatus.succeeded
    assert f"job {poison} skipped: it has failed already" in rig.logs()
    again = get_job(rig.sessions, poison)
    assert (again.status, again.attempts) == (JobStatus.failed, 1)
    assert len(rig.claims(poison)) == 1


def _job_pid(job: RepairJob) -> int:
    # lease_owner is "<hostname>/<pid of the job process>"
    assert job.lease_owner is not None
    return int(job.lease_owner.rsplit("/", 1)[1])


def test_a_job_whose_process_dies_every_attempt_fails_as_worker_lost_after_max_attempts(
    rig: Rig,
) -> None:
    # A short lease: each dead attempt is noticed (and handed on) within 3 s.
    short = rig.settings.worker.model_copy(update={"lease_seconds": 3.0})
    worker = rig.start_worker("a", rig.settings.model_copy(update={"worker": short}))
    job_id = rig.submit(LONG_SEARCH, max_attempts=2)
    for attempt in (1, 2):
        running = rig.wait_journalled_run(job_id, attempt, timeout=60)
        assert running.attempts == attempt
        pid = _job_pid(running)
        assert pid != worker.process.pid
        os.kill(pid, signal.SIGKILL)  # the job process dies as a crash or os._exit would

    job = rig.finished(job_id, timeout=60)
    assert job.status == JobStatus.failed and job.error_type == "WorkerLost", job.error
    assert job.attempts == 2 and "2 of 2 attempts" in (job.error or "")
    assert len(rig.claims(job_id)) == 2
    # The worker survived its job processes and takes the next job.
    assert worker.process.poll() is None
    good = rig.submit(tiny_config())
    assert rig.finished(good).status == JobStatus.succeeded
    assert len(rig.claims(job_id)) == 2
    assert get_job(rig.sessions, job_id).attempts == 2


def test_a_worker_killed_between_publishing_results_and_committing_leaves_only_orphans(
    rig: Rig,
) -> None:
    store = ArtifactStore(rig.settings.artifacts.root)
    before = {key for key, _ in store.published_files()}
    crashing = rig.start_worker(
        "crashing", rig.settings.model_copy(update={"fault_point": "results_published"})
    )
    job_id = rig.submit(tiny_config())
    pid = _job_pid(rig.wait(job_id, lambda j: j.lease_owner is not None, timeout=60,
                            what="the claim"))  # fmt: skip
    # Its job process publishes the result files, then SIGKILLs itself before the commit.
    wait_for(lambda: not _alive(pid), timeout=180, what="the job process to die at the point")
    crashing.stop()  # before its sweeper could hand it the job again (and it died again)
    dead = get_job(rig.sessions, job_id)
    assert dead.status == JobStatus.running and dead.result_model_key is None
    orphans = {key for key, _ in store.published_files()} - before
    assert any(key.endswith(".safetensors") for key in orphans), orphans  # published: yes

    rig.start_worker("healthy")  # its sweeper hands the job on once the dead lease expires
    job = rig.finished(job_id, timeout=180)
    assert job.status == JobStatus.succeeded, job.error
    assert (job.attempts, job.handoffs) == (2, 0)  # the dead run spent its attempt
    assert [c["worker"].split("@")[0] for c in rig.claims(job_id)] == ["crashing", "healthy"]

    # No row names a missing file; the dead run's files are no row's, and upkeep takes them.
    # This module's owner's keys only: the database is shared with other modules' tests,
    # whose files live under other artifact roots.
    with rig.sessions() as session:
        owner = f"{rig.seeded.owner_id}/"
        named = {key for key in referenced_keys(session) if key.startswith(owner)}
    assert job.result_model_key in named and not orphans & named
    assert all(store.path(key).is_file() for key in named)
    run_upkeep(rig.sessions, store, UpkeepSettings(orphan_age_seconds=1e-3))
    assert not any(store.path(key).exists() for key in orphans)
    assert all(store.path(key).is_file() for key in named)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_to_a_worker_mid_job_hands_it_on_at_once_and_the_worker_exits_without_its_grace(
    rig: Rig,
) -> None:
    grace = 60.0  # the default: Celery alone would sleep all of it with a task active
    first = rig.start_worker("first", _with_limits(rig, soft_shutdown_seconds=grace))
    config = tiny_config(**{"search.epochs": 6, "search.steps_per_epoch": 3})
    job_id = rig.submit(config)
    # Step 4 is in the second epoch, so the first epoch's search state is saved.
    rig.wait(
        job_id,
        lambda j: j.status in FINISHED or (j.stage == "searching" and j.step >= 4),
        timeout=90,
        what="the search's second epoch",
    )
    first.process.send_signal(signal.SIGTERM)  # to the worker's main process, as a deploy does
    # The job hands off at its next step; the worker's wait ends with it, not at the grace.
    first.process.wait(timeout=grace / 3)
    # Handed on by the job process itself: queued with its lease dropped (no waiting for it
    # to expire), the attempt refunded and the handoff counted.
    stopped = get_job(rig.sessions, job_id)
    assert stopped.status == JobStatus.queued, (stopped.status, first.log()[-3000:])
    assert (stopped.attempts, stopped.handoffs, stopped.lease_token) == (0, 1, None)
    assert "handoff (its worker was stopped" in first.log()

    rig.start_worker("second")
    job = rig.finished(job_id, timeout=150)
    assert job.status == JobStatus.succeeded, job.error
    assert (job.attempts, job.handoffs) == (1, 1)
    claims = rig.claims(job_id)
    assert [c["worker"].split("@")[0] for c in claims] == ["first", "second"]
    assert {"confirming", "selecting"} <= set(claims[1]["resumed_stages"])


def _with_limits(rig: Rig, **worker: Any) -> Settings:
    return rig.settings.model_copy(update={"worker": rig.settings.worker.model_copy(update=worker)})


# One run may last 14 s; at 8 s the soft limit asks it to checkpoint and hand on.
PHASES = {"phase_hard_seconds": 14, "soft_limit_margin_seconds": 6}


def test_a_job_past_its_soft_limit_resumes_in_fresh_runs_until_max_handoffs_then_fails(
    rig: Rig,
) -> None:
    worker = rig.start_worker("a", _with_limits(rig, **PHASES, max_handoffs=2))
    slow = rig.submit(LONG_SEARCH)
    job = rig.finished(slow, timeout=150)
    assert job.status == JobStatus.failed and job.error_type == "TimeLimitExceeded", job.error
    assert "time limit" in (job.error or "") and "soft time limit" in (job.error or "")
    # Three runs of one attempt: two handoffs, then the cap.
    assert (job.attempts, job.handoffs) == (1, 2)
    assert len(rig.claims(slow)) == 3
    work = rig.settings.artifacts.root / str(rig.seeded.owner_id) / "jobs" / str(slow) / "work"
    assert (work / "run-1").is_file() and (work / "run-2").is_file()
    assert job.work_dir is not None and job.work_dir.endswith("/work/run-3")
    assert worker.process.poll() is None


def test_a_run_killed_at_the_hard_limit_fails_as_time_limit_exceeded_and_is_not_rerun(
    rig: Rig,
) -> None:
    # No periodic sweep: the frozen run's lease runs out, but only the hard limit acts.
    # A 30 s run (soft limit at 28 s), so the next job needs few runs even on a busy machine.
    limits = {"phase_hard_seconds": 30, "soft_limit_margin_seconds": 2, "sweep_seconds": 3600.0}
    worker = rig.start_worker("a", _with_limits(rig, **limits))
    slow = rig.submit(LONG_SEARCH)
    running = rig.wait_journalled_run(slow, 1, timeout=60)
    os.kill(_job_pid(running), signal.SIGSTOP)  # stuck: it cannot stop at the soft limit
    job = rig.finished(slow, timeout=90)
    assert job.status == JobStatus.failed and job.error_type == "TimeLimitExceeded", job.error
    assert "killed" in (job.error or "") and (job.attempts, job.handoffs) == (1, 0)
    assert "Hard time limit (30" in worker.log()

    # A fresh job process takes the next job: however many runs it needs on this machine,
    # each resumes the last, and it succeeds.
    good = rig.submit(tiny_config())
    assert rig.finished(good, timeout=180).status == JobStatus.succeeded
    assert len(rig.claims(slow)) == 1 and get_job(rig.sessions, slow).status == JobStatus.failed


def test_redis_restarted_mid_job_hands_the_job_on_and_it_finishes_without_a_failed_attempt(
    rig: Rig, tmp_path: Path
) -> None:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        broker = BrokerSettings(url=server.url, queue=rig.settings.broker.queue)
        rig.settings = rig.settings.model_copy(update={"broker": broker})
        rig.start_worker("a")
        job_id = rig.submit(tiny_config(**{"search.epochs": 8, "search.steps_per_epoch": 3}))
        rig.wait(job_id, lambda j: j.stage == "searching", timeout=90, what="the search")
        server.stop()
        server.start()
        job = rig.finished(job_id, timeout=240)
        assert job.status == JobStatus.succeeded, job.error
        assert job.attempts == 1 and job.handoffs >= 1, (job.attempts, job.handoffs)
    finally:
        server.stop()
