"""A rig for worker-process tests that seed jobs straight into the database (no API):
real Celery workers on one queue, the job rows they share, and their journals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.db.models import JobStatus, RepairJob
from api.queue import CeleryJobQueue
from api.settings import Settings
from tests.worker.jobs import SeededModel, add_job, get_job, wait_for
from tests.worker.processes import WorkerProcess
from worker.journal import read_journal

FINISHED = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


@dataclass
class Rig:
    """Workers on the queue of `settings.broker`, over its database and Redis."""

    settings: Settings
    sessions: sessionmaker[Session]
    seeded: SeededModel
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start_worker(
        self, name: str, settings: Settings | None = None, *, ready_timeout: float = 60.0
    ) -> WorkerProcess:
        process = WorkerProcess(settings or self.settings, name, self.log_dir)
        self.workers.append(process)
        process.wait_ready(timeout=ready_timeout)
        return process

    def start_workers(self, *names: str, ready_timeout: float = 60.0) -> list[WorkerProcess]:
        """Several workers started at once (their torch imports overlap), then waited for."""
        processes = [WorkerProcess(self.settings, name, self.log_dir) for name in names]
        self.workers.extend(processes)
        for process in processes:
            process.wait_ready(timeout=ready_timeout)
        return processes

    def submit(
        self,
        config: dict[str, Any] | None = None,
        *,
        inputs: SeededModel | None = None,
        **values: Any,
    ) -> uuid.UUID:
        job_id = add_job(self.sessions, inputs or self.seeded, config, **values)
        queue = CeleryJobQueue(self.settings.broker)
        try:
            queue.enqueue(job_id)
        finally:
            queue.close()
        return job_id

    def wait(self, job_id: uuid.UUID, until: Any, *, timeout: float, what: str) -> RepairJob:
        last: list[RepairJob] = []

        def check() -> bool:
            last[:] = [get_job(self.sessions, job_id)]
            return bool(until(last[0]))

        def said() -> str:
            job = last[0]
            return (
                f"{what}; job is {job.status.value}, attempt {job.attempts}, "
                f"{job.error_type}: {job.error}"
            )

        wait_for(check, timeout=timeout, what=said, interval=0.2)
        return last[0]

    def wait_journalled_run(self, job_id: uuid.UUID, run: int, *, timeout: float) -> RepairJob:
        """The job running its `run`-th run, with that run's claim journalled: the claim
        commits before the run journals it, so a test that kills or freezes the run
        earlier finds no journal line for it."""
        return self.wait(
            job_id,
            lambda j: j.status == JobStatus.running and len(self.claims(job_id)) == run,
            timeout=timeout,
            what=f"run {run} to start and journal its claim",
        )

    def finished(self, job_id: uuid.UUID, timeout: float = 120) -> RepairJob:
        return self.wait(job_id, lambda j: j.status in FINISHED, timeout=timeout, what="the end")

    def claims(self, job_id: uuid.UUID) -> list[dict[str, Any]]:
        """The job's `claimed` journal entries, one per run, in order."""
        root = self.settings.artifacts.root
        path = root / str(self.seeded.owner_id) / "jobs" / str(job_id) / "attempts.jsonl"
        return [e for e in read_journal(path) if e["event"] == "claimed"]

    def claimed_by(self, job_id: uuid.UUID) -> list[str]:
        """Which worker (by name) claimed each run, in order."""
        return [e["worker"].split("@")[0] for e in self.claims(job_id)]

    def logs(self) -> str:
        return "".join(w.log() for w in self.workers)
