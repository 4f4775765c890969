"""Rows inserted straight into the database, for tests of what comes after an upload
(repairs, isolation) that should not depend on the upload parsers."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from api.db.models import Dataset, FailureBatch, JobStatus, Model, RepairJob


@dataclass(frozen=True)
class Seeded:
    dataset_id: uuid.UUID
    model_id: uuid.UUID
    batch_ids: list[uuid.UUID]


def seed_model(session: Session, owner_id: uuid.UUID, *, batches: int = 1) -> Seeded:
    tag = uuid.uuid4().hex
    dataset = Dataset(
        owner_id=owner_id,
        name="seeded",
        original_filename="seeded.npz",
        sha256=hashlib.sha256(tag.encode()).hexdigest(),
        size_bytes=1,
        source_format="npz",
        storage_key=f"{owner_id}/{tag}.npz",
        class_names=["a", "b", "c"],
        image_shape=[3, 8, 8],
        split_counts={"train": 6, "test": 3},
        skipped=[],
    )
    session.add(dataset)
    session.flush()
    model = Model(
        owner_id=owner_id,
        dataset_id=dataset.id,
        name="seeded",
        original_filename="seeded.safetensors",
        sha256="0" * 64,
        size_bytes=1,
        source_format="safetensors",
        storage_key=f"{owner_id}/{tag}.safetensors",
        genotype=None,
        network_config=None,
        num_classes=3,
        num_parameters=10,
    )
    session.add(model)
    session.flush()
    ids = []
    for i in range(batches):
        batch = FailureBatch(
            owner_id=owner_id,
            model_id=model.id,
            name=f"batch-{i}",
            original_filename="b.npz",
            sha256="1" * 64,
            size_bytes=1,
            source_format="npz",
            storage_key=f"{owner_id}/{tag}-{i}.npz",
            accepted=2,
            rejected=[],
        )
        session.add(batch)
        session.flush()
        ids.append(batch.id)
    session.commit()
    return Seeded(dataset.id, model.id, ids)


def seed_job(
    session: Session, owner_id: uuid.UUID, *, status: JobStatus = JobStatus.running
) -> uuid.UUID:
    """A repair job over a seeded model, in `status`, with no files behind it."""
    seeded = seed_model(session, owner_id)
    job = RepairJob(
        owner_id=owner_id,
        model_id=seeded.model_id,
        failure_batch_ids=[str(b) for b in seeded.batch_ids],
        config={},
        status=status,
        max_attempts=3,
        request_sha256=uuid.uuid4().hex * 2,
    )
    session.add(job)
    session.commit()
    return job.id
