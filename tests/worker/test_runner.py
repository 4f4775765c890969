"""`worker.runner.run_job` in-process on SQLite: each way a job can end, and resuming."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.db.models import RESULT_KEY_COLUMNS, Genotype, JobStatus, Metric, Model
from api.services.repairs import cancel_repair
from api.storage import ArtifactStore, job_folder_key
from repair_core.checkpoint import load_model
from tests.digits_problem import RepairProblem
from tests.worker.jobs import (
    SeededModel,
    add_job,
    get_job,
    set_job,
    tiny_config,
    wait_for,
    worker_settings_for,
)
from worker.context import WorkerContext, build_context
from worker.journal import read_journal
from worker.runner import JobPaths, Outcome, run_job
from worker.sweeper import sweep

pytestmark = pytest.mark.slow


@pytest.fixture
def ctx(sqlite_url: str, store: ArtifactStore) -> Iterator[WorkerContext]:
    context = build_context(worker_settings_for(sqlite_url, store.root))
    try:
        yield context
    finally:
        context.close()


def _journal(ctx: WorkerContext, seeded: SeededModel, job_id: uuid.UUID) -> list[dict]:
    return read_journal(JobPaths.of(ctx.store, seeded.owner_id, job_id).journal)


class _Background:
    """run_job in a thread, so the test can act on the job while it runs."""

    def __init__(self, ctx: WorkerContext, job_id: uuid.UUID) -> None:
        self.outcome: Outcome | None = None
        self._thread = threading.Thread(target=self._run, args=(ctx, job_id), daemon=True)
        self._thread.start()

    def _run(self, ctx: WorkerContext, job_id: uuid.UUID) -> None:
        self.outcome = run_job(ctx, job_id, worker="test/1")

    def result(self, timeout: float) -> Outcome | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "run_job did not return"
        return self.outcome


def test_a_queued_job_succeeds_stores_its_results_reduces_its_work_dir_and_ignores_a_redelivery(
    sqlite_url: str, store: ArtifactStore, seeded: SeededModel, digits_problem: RepairProblem
) -> None:
    ctx = build_context(worker_settings_for(sqlite_url, store.root, report_figures=True))
    try:
        _succeeds_and_ignores_a_later_delivery(ctx, seeded, digits_problem)
    finally:
        ctx.close()


def _succeeds_and_ignores_a_later_delivery(
    ctx: WorkerContext, seeded: SeededModel, digits_problem: RepairProblem
) -> None:
    job_id = add_job(ctx.sessions, seeded)
    assert run_job(ctx, job_id, worker="test/1") is Outcome.succeeded

    job = get_job(ctx.sessions, job_id)
    assert job.status == JobStatus.succeeded and job.attempts == 1
    assert job.progress == 100.0 and job.finished_at is not None
    assert job.lease_token is None and job.lease_owner == "test/1"
    assert job.work_dir == f"{seeded.owner_id}/jobs/{job_id}/work/run-1"
    assert {"confirming", "selecting", "searching@1", "retraining@1"} <= set(job.timings)
    assert job.result_model_key and job.report_key and job.report_png_key
    loaded = load_model(ctx.store.path(job.result_model_key))
    images = digits_problem.data.test.images[:4].float() / 255
    assert loaded.model(images).argmax(1).shape == (4,)
    assert hashlib.sha256(ctx.store.path(job.result_model_key).read_bytes()).hexdigest() == (
        job.result_model_sha256
    )
    assert b'"models"' in ctx.store.path(job.report_key).read_bytes()
    for key, sha in (
        (job.result_onnx_key, job.result_onnx_sha256),
        (job.result_torchscript_key, job.result_torchscript_sha256),
    ):
        assert key is not None and key != job.result_model_key
        assert hashlib.sha256(ctx.store.path(key).read_bytes()).hexdigest() == sha
    assert ctx.store.path(job.report_png_key).read_bytes()[:4] == b"\x89PNG"
    # The report figures, beside the job; a search ran, so its curves are there too.
    assert job.figures is not None
    assert {"cell-repaired-normal.svg", "robustness-heatmap.png", "search-alphas-normal.png",
            "retrain-curves.png"} <= set(job.figures)  # fmt: skip
    heatmap = ctx.store.path(
        ctx.store.figure_key(seeded.owner_id, job_id, "robustness-heatmap.png")
    )
    assert heatmap.read_bytes()[:4] == b"\x89PNG"
    with ctx.sessions() as session:
        genotypes = session.scalars(sa.select(Genotype).where(Genotype.job_id == job_id)).all()
        metrics = {
            m.name: m.value
            for m in session.scalars(sa.select(Metric).where(Metric.job_id == job_id))
        }
    assert [g.iteration for g in genotypes] == [1]
    assert genotypes[0].genotype == loaded.genotype.to_dict()
    assert {"original.clean", "repaired.clean", "repaired.held_out_failures"} <= set(metrics)
    deployment = {"original.params", "original.flops", "repaired.params", "repaired.flops"}
    deployment |= {"export.onnx.max_abs_diff", "repaired.clean_accuracy_dropped"}
    assert deployment <= set(metrics)
    assert metrics["export.onnx.max_abs_diff"] <= 1e-4
    assert metrics["original.held_out_failures"] == 0.0  # confirmed failures only
    events = [e["event"] for e in _journal(ctx, seeded, job_id)]
    assert events[0] == "claimed" and events[-1] == "finished"
    # Finished: the resume state is gone, the results stay, and both are counted.
    work = ctx.store.path(job.work_dir)
    assert not list(work.rglob("*_state.pt")) and (work / "model.safetensors").is_file()
    assert job.work_bytes_freed is not None and job.work_bytes_freed > 0
    # Everything in the job's folder counts: every run's directory, journal, figures.
    job_folder = ctx.store.path(job_folder_key(seeded.owner_id, job_id))
    kept = sum(p.stat().st_size for p in job_folder.rglob("*") if p.is_file())
    results = sum(
        ctx.store.path(k).stat().st_size for k in (getattr(job, c) for c in RESULT_KEY_COLUMNS) if k
    )
    assert job.stored_bytes == kept + results

    # Another delivery of the finished job is a no-op: no write at all.
    assert run_job(ctx, job_id, worker="test/2") is Outcome.skipped
    again = get_job(ctx.sessions, job_id)
    assert (again.version, again.attempts, again.lease_owner) == (job.version, 1, "test/1")


def test_bad_input_fails_the_job_at_once_with_a_readable_message(
    ctx: WorkerContext, seeded: SeededModel
) -> None:
    job_id = add_job(ctx.sessions, seeded, tiny_config(**{"search.no_such_setting": 3}))
    assert run_job(ctx, job_id, worker="test/1") is Outcome.failed
    job = get_job(ctx.sessions, job_id)
    assert job.status == JobStatus.failed and job.attempts == 1
    assert job.error_type == "RepairInputError"
    assert "search.no_such_setting" in (job.error or "")
    assert job.lease_token is None and job.finished_at is not None
    # Failed for good: another delivery does not run it again.
    assert run_job(ctx, job_id, worker="test/1") is Outcome.skipped
    assert get_job(ctx.sessions, job_id).attempts == 1


def test_a_missing_stored_input_fails_the_job_naming_the_file(
    ctx: WorkerContext, seeded: SeededModel
) -> None:
    job_id = add_job(ctx.sessions, seeded)
    with ctx.sessions() as session:
        key = session.get_one(Model, seeded.model_id).storage_key
    ctx.store.delete(key)
    assert run_job(ctx, job_id, worker="test/1") is Outcome.failed
    job = get_job(ctx.sessions, job_id)
    assert job.error_type == "RepairInputError"
    assert key in (job.error or "") and "missing" in (job.error or "")


def test_an_unexpected_error_fails_the_job_with_its_class_and_message(
    ctx: WorkerContext, seeded: SeededModel
) -> None:
    job_id = add_job(ctx.sessions, seeded)
    # A file where the work directory must go: the pipeline cannot create it.
    blocker = JobPaths.of(ctx.store, seeded.owner_id, job_id).work_root
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    assert run_job(ctx, job_id, worker="test/1") is Outcome.failed
    job = get_job(ctx.sessions, job_id)
    assert job.error_type == "FileExistsError"
    assert job.error and "work" in job.error
    assert job.attempts == 1 and job.status == JobStatus.failed


def test_a_cancel_request_stops_a_running_search_within_seconds(
    ctx: WorkerContext, seeded: SeededModel
) -> None:
    config = tiny_config(**{"search.epochs": 20, "search.steps_per_epoch": 5})
    job_id = add_job(ctx.sessions, seeded, config)
    run = _Background(ctx, job_id)
    wait_for(lambda: get_job(ctx.sessions, job_id).stage == "searching", timeout=60, what="search")
    with ctx.sessions() as session:
        assert cancel_repair(session, owner_id=seeded.owner_id, job_id=job_id).job.status == (
            JobStatus.cancelling
        )
    assert run.result(timeout=15) is Outcome.cancelled
    job = get_job(ctx.sessions, job_id)
    assert job.status == JobStatus.cancelled and job.finished_at is not None
    assert job.lease_token is None and job.progress < 100.0


def test_a_worker_whose_lease_was_taken_stops_and_writes_nothing_more(
    ctx: WorkerContext, seeded: SeededModel
) -> None:
    config = tiny_config(**{"search.epochs": 20, "search.steps_per_epoch": 5})
    job_id = add_job(ctx.sessions, seeded, config)
    run = _Background(ctx, job_id)
    wait_for(lambda: get_job(ctx.sessions, job_id).stage == "searching", timeout=60, what="search")
    usurper = uuid.uuid4()
    set_job(ctx.sessions, job_id, lease_token=usurper, lease_owner="someone-else")
    assert run.result(timeout=15) is Outcome.lost
    job = get_job(ctx.sessions, job_id)
    assert job.status == JobStatus.running
    assert (job.lease_token, job.lease_owner) == (usurper, "someone-else")


def test_a_job_taken_over_after_its_lease_expired_resumes_its_search_and_counts_attempts(
    ctx: WorkerContext, seeded: SeededModel, store: ArtifactStore
) -> None:
    config = tiny_config(**{"search.epochs": 3, "search.steps_per_epoch": 3})
    job_id = add_job(ctx.sessions, seeded, config)
    run = _Background(ctx, job_id)
    # Step 4 is in the second epoch: the first epoch's state is saved.
    wait_for(
        lambda: (j := get_job(ctx.sessions, job_id)).stage == "searching" and j.step >= 4,
        timeout=90,
        what="the second search epoch",
    )
    # As if the worker froze: its lease runs out and the sweeper hands the job on.
    set_job(ctx.sessions, job_id, lease_expires_at=get_job(ctx.sessions, job_id).created_at)
    report = sweep(ctx.sessions, ctx.queue, ctx.settings.worker)
    assert report.requeued == [job_id]
    assert run.result(timeout=15) is Outcome.lost
    assert get_job(ctx.sessions, job_id).status == JobStatus.queued

    assert run_job(ctx, job_id, worker="test/2") is Outcome.succeeded
    job = get_job(ctx.sessions, job_id)
    assert job.attempts == 2 and job.lease_owner == "test/2"
    # The second run took the first one's files over; the first's directory is a tombstone.
    paths = JobPaths.of(ctx.store, seeded.owner_id, job_id)
    assert job.work_dir == paths.run_key(2)
    assert paths.run_dir(1).is_file() and (paths.run_dir(2) / "ledger.json").is_file()
    journal = _journal(ctx, seeded, job_id)
    second = [e for e in journal if e["attempt"] == 2]
    claimed = next(e for e in second if e["event"] == "claimed")
    assert {"confirming", "selecting"} <= set(claimed["resumed_stages"])
    search = next(e for e in second if e["event"] == "stage" and e["stage"] == "searching@1")
    assert search["first_step"] > 1  # resumed from a saved epoch, not from the start
    assert not any(e["event"] == "stage" and e["stage"] == "selecting" for e in second)
    with ctx.sessions() as session:
        count = session.scalar(sa.select(sa.func.count()).where(Genotype.job_id == job_id))
    assert count == 1


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Callable[[Path], None]]:
    """Mounts a 96 KiB tmpfs at a path (as root); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(at: Path) -> None:
        at.mkdir(parents=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(at)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        mounted.append(at)

    try:
        yield mount
    finally:
        for at in mounted:
            subprocess.run(["umount", "-l", str(at)], check=False)


def test_a_full_disk_fails_the_job_readably_and_damages_nothing_stored(
    ctx: WorkerContext, seeded: SeededModel, tiny_disk: Callable[[Path], None]
) -> None:
    job_id = add_job(ctx.sessions, seeded)
    paths = JobPaths.of(ctx.store, seeded.owner_id, job_id)
    inputs = {p: p.read_bytes() for p in ctx.store.root.rglob("*.*") if p.is_file()}
    tiny_disk(paths.work_root)  # the job's work directory is on a disk that fills up

    assert run_job(ctx, job_id, worker="test/1") is Outcome.failed
    job = get_job(ctx.sessions, job_id)
    assert job.status == JobStatus.failed and job.error_type == "DiskFull", job.error
    assert "disk is full" in (job.error or "") and job.attempts == 1
    # Failed for good, not retried; the inputs are intact, the work dir holds whole files only.
    assert run_job(ctx, job_id, worker="test/2") is Outcome.skipped
    assert all(p.read_bytes() == data for p, data in inputs.items())
    left = [p for p in paths.work_root.rglob("*") if p.is_file()]
    assert not [p for p in left if p.name.endswith(".tmp")]
    ledger = paths.run_dir(1) / "ledger.json"
    assert ledger.is_file() and "stages" in json.loads(ledger.read_text())
    assert _journal(ctx, seeded, job_id)[-1]["outcome"] == "failed"


# A job process whose address space is capped this far above what it uses once the
# pipeline is imported: far too little for a search 64 channels wide, at either batch size.
_OOM_SCRIPT = """
import resource, sys, uuid
import torch
import worker.runner
from tests.worker.jobs import worker_settings_for
from worker.context import build_context
from pathlib import Path

def vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

# oneDNN reports a failed allocation as "could not create a primitive", which cannot be
# told apart from its other errors; without it every allocation goes through torch's.
torch.backends.mkldnn.enabled = False
ctx = build_context(worker_settings_for(sys.argv[1], Path(sys.argv[2])))
headroom = 400 * 2**20
resource.setrlimit(resource.RLIMIT_AS, (vm_size() + headroom, resource.RLIM_INFINITY))
print(worker.runner.run_job(ctx, uuid.UUID(sys.argv[3]), worker="test/oom").value)
"""


def test_out_of_memory_is_retried_once_with_half_the_batch_then_fails_readably(
    ctx: WorkerContext, seeded: SeededModel, sqlite_url: str
) -> None:
    wide = tiny_config(**{"search_net.init_channels": 64, "search.batch_size": 256})
    job_id = add_job(ctx.sessions, seeded, wide)
    done = subprocess.run(
        [sys.executable, "-c", _OOM_SCRIPT, sqlite_url, str(ctx.store.root), str(job_id)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "failed", done.stderr[-3000:]
    job = get_job(ctx.sessions, job_id)
    assert job.error_type == "OutOfMemoryError", job.error
    assert "half its batch sizes" in (job.error or "") and "allocate" in (job.error or "")
    assert (job.oom_retries, job.attempts, job.status) == (1, 1, JobStatus.failed)
    events = [e["event"] for e in _journal(ctx, seeded, job_id)]
    assert events.count("out_of_memory") == 1 and events[-1] == "finished"
    # The retry ran in its own folder with the halved sizes (its ledger is bound to them).
    half = JobPaths.of(ctx.store, seeded.owner_id, job_id).run_dir(1) / "half-batch"
    bound = json.loads(json.loads((half / "ledger.json").read_text())["bound"]["config"])
    assert bound["overrides"]["search.batch_size"] == 128
    assert bound["overrides"]["train.batch_size"] == 16  # the smoke profile's 32, halved
