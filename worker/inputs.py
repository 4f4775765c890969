"""A job's inputs, read from the database rows and the artifact store.

The API stored them in validated, normalised form: the dataset and failure batches as
npz (parsed here again without trusting their headers), the model as safetensors. The
rows are read first and the session released before any file is loaded, so no
transaction stays open while tensors are decoded.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import torch
from sqlalchemy.orm import Session

from api.db.models import Dataset, FailureBatch, Model, RepairJob
from api.storage import ArtifactStore
from repair_core.corruptions import CORRUPTION_NAMES
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.npz import read_npz_images, read_npz_splits
from repair_core.datasets.types import DatasetSplits, ImageDataset
from repair_core.errors import RepairInputError
from repair_core.models import DeployedModel, load_deployed
from repair_core.pipeline import OwnerLabels, RepairConfig

T = TypeVar("T", Model, Dataset, FailureBatch)


@dataclass(frozen=True)
class InputFiles:
    model: Path
    dataset: Path
    failure_batches: tuple[Path, ...]
    config: RepairConfig  # the primary variant's
    labels: OwnerLabels  # the owner's answers to the picks asked so far
    also: tuple[RepairConfig, ...] = ()  # the other variants the job compares


@dataclass(frozen=True)
class JobInputs:
    deployed: DeployedModel
    data: DatasetSplits
    failures: ImageDataset
    config: RepairConfig
    labels: OwnerLabels
    also: tuple[RepairConfig, ...] = ()


def input_files(session: Session, job: RepairJob, store: ArtifactStore) -> InputFiles:
    """Where the job's model, dataset and failure batches are; every row must still exist
    and belong to the job's owner."""
    model = owned(session, Model, job.model_id, job.owner_id, "model")
    dataset = owned(session, Dataset, model.dataset_id, job.owner_id, "dataset")
    batches = [
        owned(session, FailureBatch, uuid.UUID(str(b)), job.owner_id, "failure batch")
        for b in job.failure_batch_ids
    ]
    if not batches:
        raise RepairInputError(f"repair job {job.id} names no failure batch")
    for batch in batches:
        if batch.model_id != model.id:
            raise RepairInputError(f"failure batch {batch.id} belongs to another model")
    config = RepairConfig.from_dict({**job.config, "failure_name": failure_name(batches)})
    # A job that names its variants compares them in one report, with the Control row the
    # gains are stated against; the first is the primary (the model GET .../model serves).
    variants = [config.as_variant(name) for name in job.variants or []]
    also: tuple[RepairConfig, ...] = ()
    if variants:
        config = replace(variants[0], control=True)
        also = tuple(variants[1:])
    return InputFiles(
        model=stored_file(store, model.storage_key, f"model {model.id}"),
        dataset=stored_file(store, dataset.storage_key, f"dataset {dataset.id}"),
        failure_batches=tuple(
            stored_file(store, b.storage_key, f"failure batch {b.id}") for b in batches
        ),
        config=config,
        labels=OwnerLabels(
            {int(row): int(label) for row, label in job.labels.items()}, job.label_rounds
        ),
        also=also,
    )


def failure_name(batches: list[FailureBatch]) -> str:
    """The failures' corruption when every batch is named after the same known one, else
    "failures"."""
    # Failures named after a known corruption (e.g. "fog.npz") label the report's
    # `<corruption>_fail` column, and that corruption leaves the other columns (Table 2).
    stems = {b.name.rsplit(".", 1)[0] for b in batches}
    name = stems.pop() if len(stems) == 1 else "failures"
    return name if name in CORRUPTION_NAMES else "failures"


def load_inputs(files: InputFiles, limits: IngestLimits | None = None) -> JobInputs:
    limits = limits or IngestLimits()
    deployed = load_deployed(files.model)
    data = read_npz_splits(files.dataset, limits)
    images, labels = [], []
    for path in files.failure_batches:
        x, y = read_npz_images(path, limits)
        images.append(x)
        labels.append(y)
    failures = ImageDataset(torch.cat(images), torch.cat(labels), data.class_names)
    return JobInputs(deployed, data, failures, files.config, files.labels, files.also)


def owned(session: Session, table: type[T], row_id: uuid.UUID, owner_id: uuid.UUID, what: str) -> T:
    row = session.get(table, row_id)
    if row is None or row.owner_id != owner_id:
        raise RepairInputError(f"the job's {what} {row_id} no longer exists")
    return row


def stored_file(store: ArtifactStore, key: str, what: str) -> Path:
    """A local copy of the stored file (from an S3 store: fetched into the scratch folder
    and checked against the SHA-256 recorded at upload)."""
    try:
        return store.fetch(key)
    except FileNotFoundError:
        raise RepairInputError(f"the stored file of {what} is missing ({key})") from None
    except ValueError as exc:
        raise RepairInputError(f"the stored file of {what} is corrupt: {exc}") from None
