"""A running service for the end-to-end tests: an API server (uvicorn, in this process) and
real Celery worker processes on a Redis queue of their own, over the run's Postgres.

Two kinds (docs/testing.md): the session's shared stack, one API and one worker "a" that
every e2e test which leaves its worker alone reuses (fixture `stack`), and private stacks
for tests that kill, stop, add or reconfigure workers (`stack` in a test marked
`private_stack`, or `running_stack` with settings of the test's own).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.db.session import make_engine, make_session_factory
from api.queue import CeleryJobQueue
from api.services.owners import create_owner
from api.settings import BrokerSettings, EventSettings, Settings
from repairctl.client import RepairClient
from tests.api.conftest import serve
from tests.worker.processes import WorkerProcess, forget_queue
from worker.journal import read_journal

# The one worker of the shared stack: tests written for a private stack start "a" too.
SHARED_WORKER = "a"


@dataclass(frozen=True)
class Uploaded:
    key: str
    owner_id: uuid.UUID
    model_id: str


@dataclass
class Stack:
    url: str
    settings: Settings
    sessions: sessionmaker[Session]
    log_dir: Path
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    # A shared stack keeps its one worker for the whole session: see `start_worker`.
    shared: bool = False

    def start_worker(self, name: str) -> WorkerProcess:
        """A worker of this name, ready: started now, or the one already running (so a
        test body reads the same on a shared stack and on a private one)."""
        running = self.workers.get(name)
        if running is not None and running.process.poll() is None:
            return running
        if self.shared and name != SHARED_WORKER:
            # A second worker would stay for every later test (and take their jobs).
            raise AssertionError(
                f"the shared stack has one worker, {SHARED_WORKER!r}; a test that starts "
                f"{name!r} needs `private_stack`"
            )
        process = WorkerProcess(self.settings, name, self.log_dir)
        self.workers[name] = process
        process.wait_ready()
        return process

    def client(self, key: str) -> RepairClient:
        return RepairClient(self.url, key, timeout=60.0)

    def journal(self, owner_id: uuid.UUID, job_id: str) -> list[dict[str, Any]]:
        root = self.settings.artifacts.root
        return read_journal(root / str(owner_id) / "jobs" / job_id / "attempts.jsonl")

    def new_owner(self) -> tuple[uuid.UUID, str]:
        """An owner made as `repairctl admin create-owner` does: (id, API key)."""
        with self.sessions() as session:
            owner = create_owner(
                session, name=f"owner-{uuid.uuid4().hex[:12]}", pepper=self.settings.auth_pepper
            )
        return owner.owner_id, owner.api_key

    def worker_logs(self, tail: int = 6000) -> str:
        return "".join(
            f"--- worker {w.name} ---\n{w.log()[-tail:]}\n" for w in self.workers.values()
        )


@contextmanager
def running_stack(base: Settings, log_dir: Path, *, shared: bool = False) -> Iterator[Stack]:
    """An API server and (started by the test) workers on a queue of their own."""
    queue = f"test-worker-{uuid.uuid4().hex[:10]}"
    settings = base.model_copy(
        update={
            "broker": BrokerSettings(url=base.broker.url, queue=queue),
            # Streams read their job often enough to see every stage of a smoke job.
            "events": EventSettings(poll_seconds=0.1),
        }
    )
    engine = make_engine(settings.database.url)
    stack = None
    try:
        with serve(create_app(settings, CeleryJobQueue(settings.broker))) as url:
            stack = Stack(url, settings, make_session_factory(engine), log_dir, shared=shared)
            yield stack
    finally:
        for process in stack.workers.values() if stack else []:
            process.stop()
        # Shown by pytest when the test failed.
        print(stack.worker_logs() if stack else "")
        engine.dispose()
        forget_queue(settings.broker.url, queue)
