"""Upkeep with a real Celery worker on the embedded default (SQLite, the serverless
broker): the worker's timer sweeps abandoned temp files again and again (not only at
start-up) while leaving a file being written, reduces a finished job's work directory
that nobody reduced, and a message for a finished job never moves it back to running
(reliability case 28: completed -> running is refused)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import JobStatus, RepairJob
from api.queue import CeleryJobQueue
from api.services.owners import create_owner
from api.settings import QuotaSettings, SandboxSettings, UpkeepSettings
from api.storage import ArtifactStore, job_folder_key
from tests.api.seed import seed_job
from tests.worker.jobs import get_job, wait_for, worker_settings_for
from tests.worker.processes import WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _old_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left behind")
    then = time.time() - 3600
    os.utime(path, (then, then))
    return path


def test_a_worker_sweeps_upkeep_periodically_and_never_reruns_a_finished_job(
    sqlite_url: str, sessions: sessionmaker[Session], store: ArtifactStore, tmp_path: Path
) -> None:
    settings = worker_settings_for(sqlite_url, store.root).model_copy(
        update={
            "upkeep": UpkeepSettings(
                interval_seconds=0.5, temp_age_seconds=5.0, orphan_age_seconds=5.0
            ),
            "sandbox": SandboxSettings(timeout_seconds=1.0),
            "quotas": QuotaSettings(reservation_seconds=5.0),
        }
    )
    with sessions() as session:
        owner_id = create_owner(session, name=f"u-{uuid.uuid4().hex[:8]}", pepper="p").owner_id
        job_id = seed_job(session, owner_id, status=JobStatus.succeeded)
        before = session.get_one(RepairJob, job_id)
    work = store.path(job_folder_key(owner_id, job_id)) / "work"
    state = _old_file(work / "search_state.pt")
    kept = _old_file(work / "model.safetensors")

    # Written to all the time: never old enough to be swept.
    live = store.tmp_dir / "streaming.upload"
    live.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def keep_writing() -> None:
        with live.open("ab") as f:
            while not stop.wait(0.2):
                f.write(b"x")
                f.flush()

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    worker = WorkerProcess(settings, "upkeep", tmp_path)
    try:
        worker.wait_ready()
        wait_for(
            lambda: get_job(sessions, job_id).work_bytes_freed is not None,
            timeout=60, what="the worker's upkeep to reduce the finished job",
        )  # fmt: skip
        assert not state.exists() and kept.is_file()
        assert get_job(sessions, job_id).work_bytes_freed == len(b"left behind")
        for round_ in range(2):  # each file is placed after the previous sweep removed one
            old = _old_file(store.tmp_dir / f"abandoned-{round_}.upload")
            wait_for(
                lambda path=old: not path.exists(),  # type: ignore[misc]
                timeout=60, what=f"sweep {round_} of the temp file",
            )  # fmt: skip

        queue = CeleryJobQueue(settings.broker)
        try:
            queue.enqueue(job_id)
        finally:
            queue.close()
        wait_for(
            lambda: f"job {job_id} skipped" in worker.log(),
            timeout=60, what="the worker to receive the finished job's message",
        )  # fmt: skip
        after = get_job(sessions, job_id)
        assert after.status == JobStatus.succeeded
        assert (after.attempts, after.lease_token, after.started_at) == (
            before.attempts, before.lease_token, before.started_at,
        )  # fmt: skip
        assert live.is_file()
    finally:
        stop.set()
        writer.join(5)
        worker.stop()
