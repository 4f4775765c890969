"""End to end over HTTP with real processes: uvicorn, Celery workers, Postgres, Redis.

Tests share the session's API server and worker "a" (fixture `stack`, tests/worker/
conftest.py); those marked `private_stack` kill or add workers and get their own. The
uploads (through the API, sandbox included) are made once per session.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import sqlalchemy as sa
import torch

from api.db.models import Genotype
from api.queue import CeleryJobQueue
from repair_core.checkpoint import load_model
from repair_core.choices import SEARCH_NAMES
from repairctl.client import RepairClient, ServerEvent
from tests.digits_problem import RepairProblem
from tests.worker.jobs import tiny_config, wait_for
from tests.worker.stack import Stack, Uploaded, running_stack

# Imported from here by modules written before the stack had a module of its own.
__all__ = ["Stack", "Uploaded", "running_stack"]

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _watch(
    client: RepairClient, job_id: str, *, until: Callable[[dict[str, Any]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Every state seen while polling (5 per second) until `until(state)` holds."""
    seen: list[dict[str, Any]] = []

    def poll() -> bool:
        seen.append(client.get_repair(job_id))
        return until(seen[-1])

    wait_for(poll, timeout=timeout, what=lambda: f"job {job_id}, last {seen[-1:]}", interval=0.2)
    return seen


def _finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def _in_search(min_step: int = 1) -> Callable[[dict[str, Any]], bool]:
    return lambda job: (job["stage"] == "searching" and job["step"] >= min_step) or _finished(job)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


class _EventReader(threading.Thread):
    """Reads a job's event stream on a client of its own while the test polls."""

    def __init__(self, stack: Stack, key: str, job_id: str) -> None:
        super().__init__(daemon=True)
        self.client = stack.client(key)
        self.job_id = job_id
        self.events: list[ServerEvent] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for event in self.client.iter_events(self.job_id):
                self.events.append(event)
                if event.event == "end":
                    return
        except BaseException as exc:  # handed to the test thread
            self.error = exc
        finally:
            self.client.close()


@pytest.mark.private_stack  # the stream opens before any worker exists
def test_a_smoke_repair_runs_through_its_stages_to_success_and_its_model_downloads(
    stack: Stack, uploaded: Uploaded, digits_problem: RepairProblem, tmp_path: Path
) -> None:
    with stack.client(uploaded.key) as client:
        created = client.create_repair(uploaded.model_id, config=tiny_config())
        assert created["status"] == "queued" and created["progress"] == 0.0
        # The stream opens before a worker exists, so it sees the job from its first stage.
        reader = _EventReader(stack, uploaded.key, created["id"])
        reader.start()
        stack.start_worker("a")
        seen = _watch(client, created["id"], until=_finished, timeout=120)
        final = seen[-1]
        reader.join(timeout=30)
        assert not reader.is_alive() and reader.error is None, reader.error
        streamed = reader.events
        assert streamed[-1].event == "end" and streamed[-1].data == final
        stream_stages = [e.data["stage"] for e in streamed if e.event == "stage"]
        assert stream_stages.index("searching") < stream_stages.index("retraining")
        streamed_percents = [e.data["progress"] for e in streamed]
        assert streamed_percents == sorted(streamed_percents)
        assert [int(e.id or 0) for e in streamed] == sorted(int(e.id or 0) for e in streamed)
        assert final["status"] == "succeeded", final
        running = [s for s in seen if s["status"] == "running"]
        stages = list(dict.fromkeys(s["stage"] for s in running))
        assert {"searching", "retraining"} <= set(stages), stages
        assert stages.index("searching") < stages.index("retraining")
        percents = [s["progress"] for s in seen]
        assert percents == sorted(percents) and len(set(percents)) >= 3
        assert final["progress"] == 100.0 and final["attempts"] == 1
        assert final["genotype"] and "repaired.clean" in final["metrics"]

        path = tmp_path / "repaired.safetensors"
        digest = client.download_model(created["id"], path)
        assert digest == final["result_sha256"]
        repaired = load_model(path)
        images = digits_problem.data.test.images[:8].float() / 255
        assert repaired.model(images).argmax(1).dtype == torch.int64
        report = client.get_report(created["id"])
        assert set(report["models"]) == {"original", "CF-DARTS"}
        assert report["failure_corruption"] == "gaussian_noise"

        # The ONNX export runs in onnxruntime and computes the checkpoint's logits.
        onnx_path = tmp_path / "repaired.onnx"
        onnx_digest = client.download_model(created["id"], onnx_path, model_format="onnx")
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        for batch in (images[:1], images):
            (logits,) = session.run(["logits"], {"pixels": batch.numpy()})
            with torch.no_grad():
                expected = repaired.model(batch)
            assert float((torch.from_numpy(logits) - expected).abs().max()) <= 1e-4
    assert onnx_digest != digest and final["model_formats"] == [
        "safetensors", "onnx", "torchscript"
    ]  # fmt: skip
    check = report["info"]["exports"]["onnx"]
    assert check["max_abs_diff"] <= 1e-4
    assert final["export_max_abs_diff"]["onnx"] == check["max_abs_diff"]
    stats = report["info"]["model_stats"]
    assert final["model_size"] == {
        "deployed": stats["original"], "repaired": stats["CF-DARTS"]
    }  # fmt: skip
    original, ours = report["models"]["original"]["clean"], report["models"]["CF-DARTS"]["clean"]
    assert final["clean_accuracy_dropped"] is (original - ours > 1.0)


@pytest.mark.parametrize("strategy", ["pcdarts", "robdarts", "robdarts-reg", "dartspt"])
def test_each_search_strategy_repairs_through_the_api_and_reports_its_search_health(
    stack: Stack, uploaded: Uploaded, strategy: str
) -> None:
    stack.start_worker("a")
    with stack.client(uploaded.key) as client:
        created = client.create_repair(
            # Two search epochs keep the eigenvalue strategies within the smoke time box.
            uploaded.model_id,
            config={**tiny_config(**{"search.epochs": 2}), "search": strategy},
        )
        final = _watch(client, created["id"], until=_finished, timeout=120)[-1]
        assert final["status"] == "succeeded", final
        report = client.get_report(created["id"])
        assert set(report["models"]) == {"original", f"CF-{SEARCH_NAMES[strategy]}"}
        assert {"search.skip_connections_normal", "search.collapse_warning"} <= set(
            final["metrics"]
        )
        if strategy.startswith("robdarts"):
            assert "search.eigenvalue_last" in final["metrics"]
        if strategy == "dartspt":  # smoke's two-node cells: 5 edges and 1 node, in 2 cells
            assert final["metrics"]["search.perturbation_decisions"] == 2 * (5 + 1)


@pytest.mark.private_stack  # kills its worker
def test_a_job_whose_worker_is_killed_mid_search_resumes_on_another_worker(
    stack: Stack, uploaded: Uploaded
) -> None:
    first = stack.start_worker("first")
    config = tiny_config(**{"search.epochs": 4, "search.steps_per_epoch": 3})
    with stack.client(uploaded.key) as client:
        job_id = client.create_repair(uploaded.model_id, config=config)["id"]
        # Step 4 is in the second epoch, so the first epoch's search state is saved.
        seen = _watch(client, job_id, until=_in_search(min_step=4), timeout=90)
        assert seen[-1]["status"] == "running", seen[-1]
        first.kill()
        killed_at_progress = seen[-1]["progress"]

        stack.start_worker("second")
        final = _watch(client, job_id, until=_finished, timeout=150)[-1]
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2

    journal = stack.journal(uploaded.owner_id, job_id)
    claims = [e for e in journal if e["event"] == "claimed"]
    assert [c["worker"].split("@")[0] for c in claims] == ["first", "second"]
    # Never two at once: the second claim came after every lease the first one held.
    first_leases = [
        _time(e["lease_expires_at"])
        for e in journal
        if e["attempt"] == 1 and "lease_expires_at" in e
    ]
    assert _time(claims[1]["at"]) >= max(first_leases)
    # Resumed, not restarted: selection was not redone and the search began past step 1.
    assert {"confirming", "selecting"} <= set(claims[1]["resumed_stages"])
    second_stages = {e["stage"]: e for e in journal if e["attempt"] == 2 and e["event"] == "stage"}
    assert "selecting" not in second_stages
    assert second_stages["searching@1"]["first_step"] > 1
    assert killed_at_progress > 0
    with stack.sessions() as session:
        rows = session.scalar(
            sa.select(sa.func.count()).where(Genotype.job_id == uuid.UUID(job_id))
        )
    assert rows == 1


@pytest.mark.private_stack  # two workers
def test_a_second_delivery_of_a_running_job_is_a_no_op(stack: Stack, uploaded: Uploaded) -> None:
    stack.start_worker("a")
    stack.start_worker("b")
    config = tiny_config(**{"search.epochs": 6, "search.steps_per_epoch": 3})
    queue = CeleryJobQueue(stack.settings.broker)
    with stack.client(uploaded.key) as client:
        job_id = client.create_repair(uploaded.model_id, config=config)["id"]
        _watch(client, job_id, until=lambda j: j["status"] != "queued", timeout=60)
        queue.enqueue(uuid.UUID(job_id))  # the same message again, while it runs
        queue.close()

        def skipped() -> bool:
            return any(f"job {job_id} skipped" in w.log() for w in stack.workers.values())

        wait_for(skipped, timeout=60, what="the duplicate delivery to be skipped")
        assert client.get_repair(job_id)["status"] == "running"
        final = _watch(client, job_id, until=_finished, timeout=120)[-1]
    assert final["status"] == "succeeded" and final["attempts"] == 1
    journal = stack.journal(uploaded.owner_id, job_id)
    assert len([e for e in journal if e["event"] == "claimed"]) == 1
    logs = "".join(w.log() for w in stack.workers.values())
    assert logs.count(f"job {job_id} claimed") == 1
    with stack.sessions() as session:
        rows = session.scalar(
            sa.select(sa.func.count()).where(Genotype.job_id == uuid.UUID(job_id))
        )
    assert rows == 1


def test_a_job_cancelled_during_search_stops_within_seconds_and_the_worker_takes_the_next(
    stack: Stack, uploaded: Uploaded
) -> None:
    stack.start_worker("a")
    long_search = tiny_config(**{"search.epochs": 30, "search.steps_per_epoch": 5})
    with stack.client(uploaded.key) as client:
        job_id = client.create_repair(uploaded.model_id, config=long_search)["id"]
        _watch(client, job_id, until=_in_search(min_step=2), timeout=90)
        asked = time.monotonic()
        assert client.cancel_repair(job_id)["status"] == "cancelling"
        final = _watch(client, job_id, until=_finished, timeout=30)[-1]
        assert final["status"] == "cancelled", final
        assert time.monotonic() - asked < 10
        assert final["stage"] == "searching" and final["progress"] < 50

        next_id = client.create_repair(uploaded.model_id, config={**tiny_config(), "seed": 1})["id"]
        nxt = _watch(client, next_id, until=_finished, timeout=120)[-1]
    assert nxt["status"] == "succeeded", nxt
    with stack.sessions() as session:
        from api.db.models import RepairJob

        owners = [session.get_one(RepairJob, uuid.UUID(i)).lease_owner for i in (job_id, next_id)]
    assert all(owner and owner.startswith("a@") for owner in owners), owners


def test_a_job_comparing_two_variants_scores_both_and_the_control_and_serves_each_model(
    stack: Stack, uploaded: Uploaded, digits_problem: RepairProblem, tmp_path: Path
) -> None:
    stack.start_worker("a")
    with stack.client(uploaded.key) as client:
        created = client.create_repair(
            uploaded.model_id, config=tiny_config(), variants=["CF-DARTS", "CutMix"]
        )
        final = _watch(client, created["id"], until=_finished, timeout=180)[-1]
        assert final["status"] == "succeeded", final
        report = client.get_report(created["id"])
        path = tmp_path / "cutmix.safetensors"
        client.download_model(created["id"], path, variant="CutMix")
        # Every compared variant is exported, not only the primary.
        cutmix_onnx = tmp_path / "cutmix.onnx"
        client.download_model(created["id"], cutmix_onnx, variant="CutMix", model_format="onnx")
        client.download_model(created["id"], tmp_path / "control.safetensors", variant="Control")
        control_ts = tmp_path / "control.pt"
        client.download_model(
            created["id"], control_ts, variant="Control", model_format="torchscript"
        )
    info = report["info"]
    assert list(report["models"]) == ["original", "Control", "CF-DARTS", "CutMix"]
    assert info["primary"] == "CF-DARTS" and info["control"] == "Control"
    # One held-out set for every row: CF-DARTS's (its core set left out), not the larger
    # one CutMix, which selects nothing, would have had alone.
    held = info["held_out_rows"]
    assert len(held) == info["variants"]["CF-DARTS"]["held_out_failures"] > 0
    assert info["variants"]["CutMix"]["held_out_failures"] > len(held)
    assert all(row["held_out_failures"] is not None for row in report["models"].values())
    assert final["variants"] == ["CF-DARTS", "CutMix"]
    every_format = ["safetensors", "onnx", "torchscript"]
    assert final["variant_downloads"] == dict.fromkeys(
        ["CF-DARTS", "CutMix", "Control"], every_format
    )
    assert set(info["variant_exports"]) == {"CutMix", "Control"}
    assert {"control.clean", "CutMix.clean", "repaired.clean"} <= set(final["metrics"])
    cutmix = load_model(path)
    images = digits_problem.data.test.images[:8].float() / 255
    assert cutmix.model(images).shape == (8, len(digits_problem.data.class_names))
    # CutMix keeps the deployed architecture; the primary's is the searched one.
    assert cutmix.genotype == load_model(digits_problem.checkpoint).genotype
    # The exports compute their own variant's logits: CutMix's ONNX in onnxruntime, the
    # Control's TorchScript in torch.jit.
    session = ort.InferenceSession(str(cutmix_onnx), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"pixels": images.numpy()})
    with torch.no_grad():
        expected = cutmix.model(images)
    assert float((torch.from_numpy(logits) - expected).abs().max()) <= 1e-4
    control = load_model(tmp_path / "control.safetensors")
    scripted = torch.jit.load(str(control_ts))
    with torch.no_grad():
        assert float((scripted(images) - control.model(images)).abs().max()) <= 1e-4
