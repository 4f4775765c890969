"""Scaling out on an S3 store: two Celery workers that share only Postgres, Redis and an S3
server (moto on loopback), each with a scratch folder of its own, and an API server with a
third. The first is killed with SIGKILL during retraining; the second pulls the job's
checkpoints from the bucket, resumes from the last one and finishes."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.db.models import RepairJob
from api.db.session import make_engine, make_session_factory
from api.queue import CeleryJobQueue
from api.services.owners import create_owner
from api.settings import ArtifactSettings, BrokerSettings, Settings
from api.storage.s3 import S3ArtifactStore
from repair_core.checkpoint import load_model
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from repair_core.scratch import TRAIN_STATE
from repairctl.client import RepairClient
from tests.api.conftest import serve
from tests.digits_problem import RepairProblem
from tests.s3server import s3_settings
from tests.worker.jobs import tiny_config, wait_for, worker_settings_for
from tests.worker.processes import WorkerProcess, forget_queue
from worker.journal import JOURNAL_NAME, read_journal

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _on_machine(base: Settings, scratch: Path) -> Settings:
    """`base` as one machine sees it: the shared bucket, a scratch folder of its own."""
    artifacts = ArtifactSettings(backend="s3", root=scratch, s3=base.artifacts.s3)
    return base.model_copy(update={"artifacts": artifacts})


@pytest.fixture
def base(
    worker_postgres_url: str, redis_url: str, s3_endpoint: str, tmp_path: Path
) -> Iterator[Settings]:
    queue = f"test-s3-{uuid.uuid4().hex[:10]}"
    settings = worker_settings_for(
        worker_postgres_url, tmp_path / "unused",
        broker=BrokerSettings(url=redis_url, queue=queue),
        # Checkpoints reach the bucket within a fraction of an epoch.
        writethrough_seconds=0.2,
    )  # fmt: skip
    s3 = s3_settings(s3_endpoint)
    settings = settings.model_copy(
        update={"artifacts": ArtifactSettings(backend="s3", root=tmp_path / "unused", s3=s3)}
    )
    try:
        yield settings
    finally:
        forget_queue(redis_url, queue)


def _journal(store: S3ArtifactStore, owner_id: uuid.UUID, job_id: str, into: Path) -> list[Any]:
    """The attempt journal as the bucket holds it (neither machine's scratch copy)."""
    into.parent.mkdir(parents=True, exist_ok=True)
    store.download(f"{owner_id}/jobs/{job_id}/{JOURNAL_NAME}", into)
    return read_journal(into)


def _train_states(store: S3ArtifactStore, owner_id: uuid.UUID, job_id: str) -> list[str]:
    return [
        o.key
        for o in store.objects(f"{owner_id}/jobs/{job_id}/work/")
        if o.key.endswith("/" + TRAIN_STATE)
    ]


def test_a_job_whose_worker_is_killed_in_retraining_resumes_from_s3_on_another_machine(
    base: Settings, digits_problem: RepairProblem, tmp_path: Path
) -> None:
    api_settings = _on_machine(base, tmp_path / "api-scratch")
    store = S3ArtifactStore(tmp_path / "test-scratch", base.artifacts.s3)
    engine = make_engine(base.database.url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        owner = create_owner(
            session, name=f"owner-{uuid.uuid4().hex[:12]}", pepper=base.auth_pepper
        )
    files = tmp_path / "uploads"
    files.mkdir()
    write_npz_splits(files / "digits.npz", digits_problem.data)
    failures = digits_problem.failures
    write_npz_images(files / "gaussian_noise.npz", failures.images, failures.labels)
    workers: list[WorkerProcess] = []
    try:
        with (
            serve(create_app(api_settings, CeleryJobQueue(api_settings.broker))) as url,
            RepairClient(url, owner.api_key, timeout=60.0) as client,
        ):
            dataset = client.upload_dataset(files / "digits.npz")
            model = client.upload_model(digits_problem.checkpoint, dataset_id=dataset["id"])
            client.upload_failures(model["id"], files / "gaussian_noise.npz")

            first = WorkerProcess(_on_machine(base, tmp_path / "scratch-1"), "first", tmp_path)
            workers.append(first)
            first.wait_ready()
            config = tiny_config(**{"train.epochs": 3})
            job_id = client.create_repair(model["id"], config=config)["id"]

            def retraining_checkpointed() -> bool:
                job = client.get_repair(job_id)
                assert job["status"] in ("queued", "running"), job
                return job["stage"] == "retraining" and bool(
                    _train_states(store, owner.owner_id, job_id)
                )

            wait_for(
                retraining_checkpointed, timeout=120, interval=0.1,
                what="the first worker to write a retraining checkpoint through to S3",
            )  # fmt: skip
            first.kill()

            second = WorkerProcess(_on_machine(base, tmp_path / "scratch-2"), "second", tmp_path)
            workers.append(second)
            second.wait_ready()
            seen: list[dict[str, Any]] = []

            def finished() -> bool:
                seen.append(client.get_repair(job_id))
                return seen[-1]["status"] in ("succeeded", "failed", "cancelled")

            wait_for(finished, timeout=180, interval=0.2, what=lambda: f"job, last {seen[-1:]}")
            final = seen[-1]
            assert final["status"] == "succeeded", final
            assert final["attempts"] == 2
            downloaded = tmp_path / "repaired.safetensors"
            digest = client.download_model(job_id, downloaded)
            assert digest == final["result_sha256"]
            assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == digest
            load_model(downloaded)
        with sessions() as session:
            result_key = session.get_one(RepairJob, uuid.UUID(job_id)).result_model_key
        assert result_key is not None
    finally:
        for process in workers:
            process.stop()
            print(f"--- worker {process.name} ---\n{process.log()[-6000:]}")
        engine.dispose()

    journal = _journal(store, owner.owner_id, job_id, tmp_path / "journal" / JOURNAL_NAME)
    claims = [e for e in journal if e["event"] == "claimed"]
    assert [c["worker"].split("@")[0] for c in claims] == ["first", "second"]
    # The search was not redone: the second run resumed past it, inside retraining.
    assert "searching" in " ".join(claims[1]["resumed_stages"])
    second = {e["stage"]: e for e in journal if e["attempt"] == 2 and e["event"] == "stage"}
    assert not any(stage.startswith(("selecting", "searching")) for stage in second), second
    retraining = [e for stage, e in second.items() if stage.startswith("retraining")]
    assert retraining and retraining[0]["first_step"] > 1, second
    # The result is an object in the bucket; neither machine's scratch copy is needed.
    assert store.exists(result_key)
