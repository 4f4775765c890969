"""Datasets: validate an uploaded archive/npz in the sandbox, store it as npz, list, get."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.db.models import Dataset
from api.services.common import check_name, get_owned, list_owned
from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads import validation
from api.uploads.forms import DATASET_FORM
from api.uploads.multipart import ReceivedUpload
from api.uploads.staging import UploadStaging, ingest_limits


def create_dataset(
    session: Session,
    *,
    owner_id: uuid.UUID,
    upload: ReceivedUpload,
    store: ArtifactStore,
    settings: Settings,
) -> tuple[Dataset, bool]:
    """Validate and store an uploaded dataset; returns (dataset, created).

    An identical re-upload by the same owner returns the existing dataset (created is
    False). Takes ownership of the upload's temp file: it is gone when this returns.
    On any failure nothing is left: no row, no file.
    """
    with UploadStaging(upload, store, DATASET_FORM, suffix=".npz", settings=settings) as staging:
        kind = staging.check_kind()
        name = check_name(upload.fields.get("name"), default=upload.filename)
        existing = _find_by_digest(session, owner_id=owner_id, sha256=upload.stored.sha256)
        if existing is not None:
            return existing, False
        staging.check_quota(session, owner_id)
        summary = staging.validate(
            session,
            validation.ingest_dataset,
            ingest_limits(settings.uploads),
            sandbox=settings.sandbox,
        )
        staging.publish(owner_id)
        dataset = Dataset(
            **staging.upload_columns(owner_id=owner_id, name=name, kind=kind),
            class_names=list(summary["class_names"]),
            image_shape=[int(v) for v in summary["image_shape"]],
            split_counts={k: int(v) for k, v in summary["split_counts"].items()},
            skipped=list(summary.get("skipped", [])),
        )
        try:
            staging.commit(session, dataset)
        except IntegrityError:
            # Same bytes uploaded concurrently by the same owner: the other one won.
            session.rollback()
            staging.unpublish()
            existing = _find_by_digest(session, owner_id=owner_id, sha256=upload.stored.sha256)
            if existing is None:
                raise
            return existing, False
        return dataset, True


def _find_by_digest(session: Session, *, owner_id: uuid.UUID, sha256: str) -> Dataset | None:
    return session.scalars(
        sa.select(Dataset).where(Dataset.owner_id == owner_id, Dataset.sha256 == sha256)
    ).first()


def list_datasets(session: Session, *, owner_id: uuid.UUID) -> list[Dataset]:
    return list_owned(session, Dataset, owner_id=owner_id)


def get_dataset(session: Session, *, owner_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
    return get_owned(session, Dataset, owner_id=owner_id, id=dataset_id, what="dataset")
