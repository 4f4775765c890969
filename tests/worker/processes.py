"""Real Celery worker processes for the end-to-end tests: start, wait until ready, kill."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import redis

from api.settings import Settings
from repairctl.service import PROJECT_ROOT, worker_command, worker_env
from tests.worker.jobs import wait_for

# Celery's lines about a task: "Task repair.run_job[<id>] received", "... succeeded in",
# "... failed:", "... raised unexpected:", "... retry:".
_TASK_LINE = re.compile(r"Task [\w.]+\[([0-9a-f-]+)\] (\w+)")


class WorkerProcess:
    """`celery -A worker.main:app worker` with the given settings, in its own
    process group (so a kill takes its job process too, as losing a machine would)."""

    def __init__(
        self, settings: Settings, name: str, log_dir: Path, log_level: str = "INFO"
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"worker-{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            worker_command(name, log_level),
            cwd=PROJECT_ROOT,
            env={"OMP_NUM_THREADS": "1", **worker_env(settings)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"worker {self.name} exited early:\n{self.log()[-3000:]}")
            return " ready." in self.log()

        wait_for(ready, timeout=timeout, what=f"worker {self.name} to be ready", interval=0.2)

    def kill(self) -> None:
        """SIGKILL the worker and its job process at once: no cleanup runs."""
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a cold shutdown, see `worker_env`), then SIGKILL for the rest once the
        worker is gone or its tasks have ended: a task active at the SIGTERM makes Celery
        sleep the whole `soft_shutdown_seconds`, even after the task returned (a test
        that ends as its job's row turns terminal catches the task tidying up)."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(AssertionError):  # past `timeout`, killed as before
                wait_for(
                    lambda: self.process.poll() is not None or self.tasks_ended(),
                    timeout=timeout, what=f"worker {self.name} to stop", interval=0.1,
                )  # fmt: skip
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._log.close()

    def tasks_ended(self) -> bool:
        """Whether every task this worker received has ended, as its log says."""
        received, ended = set(), set()
        for task_id, what in _TASK_LINE.findall(self.log()):
            (received if what == "received" else ended).add(task_id)
        return received <= ended

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self.process.pid, sig)


def forget_queue(url: str, queue: str) -> None:
    """Drop the test queue and the unacknowledged messages killed workers left for it
    (Redis would hand them back after the visibility timeout, hours later)."""
    client = redis.Redis.from_url(url)
    try:
        client.delete(queue)
        for tag, raw in client.hgetall("unacked").items():
            if json.loads(raw)[2] == queue:  # (message, exchange, routing key)
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    finally:
        client.close()


class PrivateRedis:
    """A redis-server of the test's own on a free port (never the machine's), to restart,
    optionally with a password (`requirepass`)."""

    def __init__(self, folder: Path, password: str | None = None) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.folder = folder
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        auth = ["--requirepass", self.password] if self.password else []
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--save", "", *auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self._answers, timeout=30, what="the private redis to answer")

    def _answers(self) -> bool:
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
