"""Running a transfer job (docs/transfer.md): its inputs from the rows, then
`repair_core.pipeline.transfer.transfer` in the job's work directory.

The genotype was copied into the job's config when the transfer was created; the deployed
architecture (the control: its genotype, or its timm / torchvision registry name) is read
from the model row, with DARTS V2 as the documented fallback for an ONNX graph; the source
job, when it still exists, names the failures' corruption (whose whole-test-split column
the report then has).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.orm import Session

from api.db.models import Dataset, FailureBatch, Model, RepairJob
from api.storage import ArtifactStore
from repair_core import choices
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.npz import read_npz_splits
from repair_core.errors import RepairInputError
from repair_core.models.retrainable import DeployedArchitecture
from repair_core.pipeline import RepairResult, build_plan
from repair_core.pipeline.transfer import transfer
from repair_core.progress import CancelToken, ProgressCallback
from repair_core.search.genotype import Genotype
from worker.inputs import failure_name, owned, stored_file


@dataclass(frozen=True)
class TransferFiles:
    dataset: Path
    genotype: Genotype  # the source job's searched cell
    deployed: DeployedArchitecture  # what the control retrains
    profile: str
    overrides: dict[str, Any]
    seed: int
    failure_name: str | None  # a known corruption, or None


def transfer_files(session: Session, job: RepairJob, store: ArtifactStore) -> TransferFiles:
    if job.dataset_id is None:
        raise RepairInputError(f"transfer job {job.id} names no dataset")
    dataset = owned(session, Dataset, job.dataset_id, job.owner_id, "dataset")
    model = owned(session, Model, job.model_id, job.owner_id, "model")
    corruption = None
    source = None if job.source_job_id is None else session.get(RepairJob, job.source_job_id)
    if source is not None:
        batches = [session.get(FailureBatch, uuid.UUID(str(b))) for b in source.failure_batch_ids]
        name = failure_name([b for b in batches if b is not None])
        corruption = None if name == "failures" else name
    config = job.config
    return TransferFiles(
        dataset=stored_file(store, dataset.storage_key, f"dataset {dataset.id}"),
        genotype=Genotype.from_dict(config["genotype"]),
        deployed=DeployedArchitecture(
            model.family,
            model.architecture or "",
            None if model.genotype is None else Genotype.from_dict(model.genotype),
        ),
        profile=str(config.get("profile") or choices.DEFAULT_PROFILE),
        overrides=dict(config.get("overrides", {})),
        seed=int(config.get("seed", 0)),
        failure_name=corruption,
    )


def run_transfer(
    files: TransferFiles,
    *,
    work_dir: Path,
    device: torch.device | str,
    on_progress: ProgressCallback,
    cancel: CancelToken,
) -> RepairResult:
    data = read_npz_splits(files.dataset, IngestLimits())
    # The search is not run: any strategy gives the same net, train and evaluation plan.
    plan = build_plan(
        files.profile, files.overrides, search=choices.DEFAULT_SEARCH, seed=files.seed
    )
    return transfer(
        files.genotype, files.deployed, data, plan,
        seed=files.seed, work_dir=work_dir, failure_name=files.failure_name,
        device=device, on_progress=on_progress, cancel=cancel,
    )  # fmt: skip
