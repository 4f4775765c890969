"""The embedded default end to end: `repairctl serve` (SQLite, local artifacts, the
serverless broker) runs a repair requested over HTTP; Ctrl-C stops every process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings
from repair_core.checkpoint import load_model
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from repairctl.client import RepairClient
from repairctl.commands.admin import new_owner
from repairctl.service import PROJECT_ROOT, child_env
from tests.digits_problem import RepairProblem
from tests.servers import free_port, healthz_answers
from tests.worker.jobs import tiny_config, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _as_a_background_job() -> None:
    # What `cmd &` in a non-interactive shell (a CI script) does to its job: SIGINT
    # ignored. `serve` must still stop on Ctrl-C (it sets its own handler).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _processes_using(marker: str) -> list[int]:
    """Pids whose environment mentions `marker` (this test's private folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_repairctl_serve_repairs_over_http_on_the_embedded_default_and_stops_on_ctrl_c(
    tmp_path: Path, digits_problem: RepairProblem
) -> None:
    var = tmp_path / "var"
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{var / 'repair.db'}"),
        broker=BrokerSettings(url="filesystem://", folder=var / "broker"),
        artifacts=ArtifactSettings(root=var / "artifacts"),
        device="cpu",
    )
    assert settings.broker.url == Settings().broker.url  # the default broker
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "repairctl", "serve", "--port", str(port)],
        cwd=tmp_path, env=child_env(settings), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=_as_a_background_job,
    )  # fmt: skip
    try:
        wait_for(lambda: healthz_answers(url), timeout=60, what="the API of `repairctl serve`")
        write_npz_splits(tmp_path / "digits.npz", digits_problem.data)
        failures = digits_problem.failures
        write_npz_images(tmp_path / "gaussian_noise.npz", failures.images, failures.labels)
        owner = new_owner(settings, "embedded")
        with RepairClient(url, owner.api_key) as client:
            dataset = client.upload_dataset(tmp_path / "digits.npz")
            model = client.upload_model(digits_problem.checkpoint, dataset_id=dataset["id"])
            client.upload_failures(model["id"], tmp_path / "gaussian_noise.npz")
            job = client.create_repair(model["id"], config=tiny_config())
            stages: set[str] = set()

            def finished() -> bool:
                state = client.get_repair(job["id"])
                stages.add(state["stage"] or "")
                return state["status"] in ("succeeded", "failed", "cancelled")

            wait_for(finished, timeout=180, what="the repair to finish", interval=0.2)
            final = client.get_repair(job["id"])
            assert final["status"] == "succeeded", final
            assert {"searching", "retraining"} <= stages
            client.download_model(job["id"], tmp_path / "repaired.safetensors")
            assert client.get_report(job["id"])["models"]["original"]["clean"] > 0
        repaired = load_model(tmp_path / "repaired.safetensors")
        assert repaired.model(digits_problem.data.test.images[:3].float() / 255).shape == (3, 10)
        assert len(_processes_using(str(var))) >= 3  # serve, the API, the worker (+ its job)
        # The serverless broker keeps all its files in its folder, none in a working dir.
        assert (var / "broker" / "control").is_dir()
        assert not (tmp_path / "control").exists() and not (PROJECT_ROOT / "control").exists()

        os.killpg(serve.pid, signal.SIGINT)  # Ctrl-C in the terminal
        # The job's task may still be tidying up (work-dir reduction) after the row says
        # succeeded; the worker's soft shutdown waits only until it is done, well within
        # its grace (Celery alone would sleep all of it: `serve` would then take at least
        # the whole grace). 10 s short of it, not less: on a busy machine the API's and
        # the worker's own shutdowns take seconds.
        grace = Settings().worker.soft_shutdown_seconds
        assert serve.wait(timeout=grace - 10) == 0
        assert not healthz_answers(url)
        wait_for(lambda: not _processes_using(str(var)), timeout=10, what="all children to exit")
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
        # A failed stop leaves serve's API and worker (sessions of their own) behind.
        for pid in _processes_using(str(var)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        print((tmp_path / "serve.log").read_text(errors="replace")[-5000:])
