"""The service as child processes: the API (uvicorn) and one Celery worker, sharing one
settings object handed down as `REPAIR_*` variables. Used by `serve` and `demo`."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import IO

from api.settings import Settings, to_env

# The project root: children import `api` and `worker` from here even when the
# project is not installed (a source checkout run with `python -m repairctl`).
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def child_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPAIR_")}
    env.update(to_env(settings))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def api_command(host: str, port: int, log_level: str = "warning") -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory",
        "--host", host, "--port", str(port), "--log-level", log_level,
    ]  # fmt: skip


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process. SIGTERM (what a deploy, systemd or Kubernetes
    sends) means Celery's cold shutdown, as SIGQUIT does: the running job gets
    `worker.soft_shutdown_seconds` to finish, then goes back to the queue. Celery's own
    SIGTERM, a warm shutdown, would hold the deploy until the job ends (hours) and then
    lose it to the SIGKILL that follows. Billiard reads this when it is first imported."""
    return {**child_env(settings), "REMAP_SIGTERM": "SIGQUIT"}


def worker_command(name: str = "repair", log_level: str = "INFO") -> list[str]:
    # One job at a time (worker_concurrency = 1 in the app). Mingle and gossip only
    # exchange worker-to-worker chatter this service does not use.
    return [
        sys.executable, "-m", "celery", "-A", "worker.main:app", "worker",
        "--loglevel", log_level, "--hostname", f"{name}@%h",
        "--without-mingle", "--without-gossip", "--without-heartbeat",
    ]  # fmt: skip


class ServiceProcesses:
    """Starts the API and a worker; `stop()` (or leaving the `with`) ends both.

    Each child gets its own process group, so a terminal's Ctrl-C reaches only us and we
    shut the children down in order: the API at once, the worker with a cold shutdown
    that lets a running job go on for `worker.soft_shutdown_seconds` before handing it
    back (it resumes from its checkpoint once its lease has expired).
    """

    def __init__(
        self, settings: Settings, *, host: str, port: int, log_dir: Path | None = None
    ) -> None:
        self.settings = settings
        self.url = f"http://{host}:{port}"
        self._host, self._port = host, port
        self._log_dir = log_dir
        self._logs: list[IO[bytes]] = []
        self.api: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcesses:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        env = child_env(self.settings)
        self.api = self._spawn(api_command(self._host, self._port), env, "api")
        self.worker = self._spawn(worker_command(), worker_env(self.settings), "worker")

    def _spawn(self, command: list[str], env: dict[str, str], name: str) -> subprocess.Popen[bytes]:
        output: IO[bytes] | None = None
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            output = (self._log_dir / f"{name}.log").open("ab")
            self._logs.append(output)
        return subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )

    def log_path(self, name: str) -> Path | None:
        return None if self._log_dir is None else self._log_dir / f"{name}.log"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the API answers /healthz and (when it logs to a file) the worker is ready."""
        deadline = time.monotonic() + timeout
        while not (self._api_healthy() and self._worker_ready()):
            if self.exited() is not None:
                raise RuntimeError(f"the service stopped while starting ({self.exited()})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the service was not ready after {timeout:.0f} s")
            time.sleep(0.2)

    def _api_healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _worker_ready(self) -> bool:
        log = self.log_path("worker")
        return log is None or " ready." in log.read_text(errors="replace")

    def exited(self) -> str | None:
        """Which child has exited, and how; None while both run."""
        for name, process in (("api", self.api), ("worker", self.worker)):
            if process is not None and process.poll() is not None:
                return f"{name} exited with code {process.returncode}"
        return None

    def wait(self, poll_seconds: float = 0.5) -> str:
        """Block until a child exits; returns which one and how."""
        while (what := self.exited()) is None:
            time.sleep(poll_seconds)
        return what

    def stop(self) -> None:
        grace = self.settings.worker.soft_shutdown_seconds + 15.0
        _signal(self.api, signal.SIGTERM)
        _signal(self.worker, signal.SIGQUIT)  # Celery's cold shutdown (soft part first)
        for process, timeout in ((self.api, 15.0), (self.worker, grace)):
            if process is None:
                continue
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
            _signal(process, signal.SIGKILL)  # whatever is left of its process group
            process.wait()
        for log in self._logs:
            log.close()
        self._logs = []


def _signal(process: subprocess.Popen[bytes] | None, sig: signal.Signals) -> None:
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(process.pid, sig)
