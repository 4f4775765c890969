"""Repair jobs written straight into a database and artifact store (no uploads), with the
real digits problem behind them, for tests of what the worker does with a job."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import Dataset, FailureBatch, JobStatus, Model, Owner, RepairJob
from api.settings import (
    ArtifactSettings,
    BrokerSettings,
    DatabaseSettings,
    Settings,
    WorkerSettings,
)
from api.storage import ArtifactStore
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from tests.digits_problem import RepairProblem

# Even smaller than the smoke profile: a job takes a few seconds on 2 cores.
TINY: dict[str, Any] = {
    "evaluation.corruptions": "gaussian_noise,fog",
    "evaluation.severities": "1,5",
    "evaluation.max_images": 40,
    # Retraining was most of a tiny job (3 epochs of 1024 images, 96 steps): 256 images
    # keep 24 steps, still a stage that lasts past a few polls, a quarter of the CPU.
    "data.train_max_images": 256,
}


def tiny_config(**overrides: Any) -> dict[str, Any]:
    return {"profile": "smoke", "budget": 30, "overrides": {**TINY, **overrides}}


@dataclass(frozen=True)
class SeededModel:
    owner_id: uuid.UUID
    model_id: uuid.UUID
    batch_id: uuid.UUID


def seed_digits_model(
    sessions: sessionmaker[Session], store: ArtifactStore, problem: RepairProblem
) -> SeededModel:
    """An owner, the digits dataset, the deployed model and its noisy failures."""
    with sessions() as session:
        owner = Owner(name=f"owner-{uuid.uuid4().hex[:12]}")
        session.add(owner)
        session.flush()
        (store.root / str(owner.id)).mkdir(parents=True)
        data_key = store.new_key(owner.id, ".npz")
        write_npz_splits(store.path(data_key), problem.data)
        model_key = store.new_key(owner.id, ".safetensors")
        shutil.copyfile(problem.checkpoint, store.path(model_key))
        batch_key = store.new_key(owner.id, ".npz")
        write_npz_images(store.path(batch_key), problem.failures.images, problem.failures.labels)
        common = {"sha256": "0" * 64, "size_bytes": 1}
        dataset = Dataset(
            owner_id=owner.id, name="digits", original_filename="digits.npz",
            source_format="npz", storage_key=data_key,
            class_names=list(problem.data.class_names), image_shape=[1, 8, 8],
            split_counts={"train": len(problem.data.train), "test": len(problem.data.test)},
            skipped=[], **common,
        )  # fmt: skip
        session.add(dataset)
        session.flush()
        model = Model(
            owner_id=owner.id, dataset_id=dataset.id, name="phi0",
            original_filename="phi0.safetensors", source_format="safetensors",
            storage_key=model_key, genotype=None, network_config=None, num_classes=10,
            num_parameters=1, **common,
        )  # fmt: skip
        session.add(model)
        session.flush()
        batch = FailureBatch(
            owner_id=owner.id, model_id=model.id, name="gaussian_noise.npz",
            original_filename="gaussian_noise.npz", source_format="npz", storage_key=batch_key,
            accepted=len(problem.failures), rejected=[], **common,
        )  # fmt: skip
        session.add(batch)
        session.commit()
        return SeededModel(owner.id, model.id, batch.id)


def add_job(
    sessions: sessionmaker[Session],
    seeded: SeededModel,
    config: dict[str, Any] | None = None,
    *,
    max_attempts: int = 3,
    **values: Any,
) -> uuid.UUID:
    with sessions() as session:
        job = RepairJob(
            owner_id=seeded.owner_id, model_id=seeded.model_id,
            failure_batch_ids=[str(seeded.batch_id)], config=config or tiny_config(),
            status=JobStatus.queued, max_attempts=max_attempts,
            request_sha256=uuid.uuid4().hex * 2, **values,
        )  # fmt: skip
        session.add(job)
        session.commit()
        return job.id


def queued_job(db: sessionmaker[Session]) -> uuid.UUID:
    """A queued job over rows only: these tests never run the pipeline, so no files."""
    with db() as session:
        owner = Owner(name=f"owner-{uuid.uuid4().hex[:12]}")
        session.add(owner)
        session.flush()
        common = {"owner_id": owner.id, "sha256": "0" * 64, "size_bytes": 1}
        dataset = Dataset(
            name="d", original_filename="d.npz", source_format="npz", storage_key="x/d",
            class_names=["a", "b"], image_shape=[1, 8, 8], split_counts={}, skipped=[], **common,
        )  # fmt: skip
        session.add(dataset)
        session.flush()
        model = Model(
            dataset_id=dataset.id, name="m", original_filename="m.safetensors",
            source_format="safetensors", storage_key="x/m", num_classes=2, num_parameters=1,
            **common,
        )  # fmt: skip
        session.add(model)
        session.flush()
        batch = FailureBatch(
            model_id=model.id, name="b", original_filename="b.npz", source_format="npz",
            storage_key="x/b", accepted=1, rejected=[], **common,
        )  # fmt: skip
        session.add(batch)
        session.commit()
        seeded = SeededModel(owner.id, model.id, batch.id)
    return add_job(db, seeded, {"profile": "smoke"})


def get_job(sessions: sessionmaker[Session], job_id: uuid.UUID) -> RepairJob:
    with sessions() as session:
        return session.get_one(RepairJob, job_id)


def set_job(sessions: sessionmaker[Session], job_id: uuid.UUID, **values: Any) -> None:
    with sessions() as session:
        session.execute(sa.update(RepairJob).where(RepairJob.id == job_id).values(**values))
        session.commit()


def worker_settings_for(
    database_url: str,
    artifacts: Path,
    *,
    broker: BrokerSettings | None = None,
    **worker: Any,
) -> Settings:
    """Settings of a test worker: short heartbeat and lease so takeovers happen in seconds."""
    timing = {
        "heartbeat_seconds": 0.5,
        "lease_seconds": 5.0,
        "sweep_seconds": 0.5,
        "cancel_poll_seconds": 0.2,
        "progress_min_interval_seconds": 0.2,
        "requeue_queued_after_seconds": 60.0,
        # Seconds of matplotlib per succeeded job: only the tests of the figures draw them.
        "report_figures": False,
        **worker,
    }
    return Settings(
        database=DatabaseSettings(url=database_url),
        broker=broker or BrokerSettings(url="filesystem://", folder=artifacts.parent / "broker"),
        artifacts=ArtifactSettings(root=artifacts),
        worker=WorkerSettings(**timing),
        device="cpu",
    )


def wait_for(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.1,
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` s saying
    `what` (or what `what()` says then)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {said}")
        time.sleep(interval)
