"""Failure batches: images from the field (with their true labels where known), attached
to a model; unlabeled images are labelled on demand (docs/label-on-demand.md).

The sandboxed child decodes them against the model's dataset (class names, image
shape) and reports every rejected file with its reason; accepted images are stored as
npz (`x` uint8 NCHW, `y` int64) for the worker.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.db.models import Dataset, FailureBatch, Model
from api.errors import InvalidInputError, NotFoundError
from api.services.common import check_name, get_owned
from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads import validation
from api.uploads.forms import FAILURE_BATCH_FORM
from api.uploads.multipart import ReceivedUpload
from api.uploads.staging import UploadStaging, ingest_limits

# Rejections listed in an error response; the full list is stored with an accepted batch.
MAX_LISTED_REJECTIONS = 20


def create_failure_batch(
    session: Session,
    *,
    owner_id: uuid.UUID,
    model_id: uuid.UUID,
    upload: ReceivedUpload,
    store: ArtifactStore,
    settings: Settings,
) -> FailureBatch:
    """Validate and store a failure batch. Takes ownership of the upload's temp file."""
    with UploadStaging(
        upload, store, FAILURE_BATCH_FORM, suffix=".npz", settings=settings
    ) as staging:
        model = get_owned(session, Model, owner_id=owner_id, id=model_id, what="model")
        dataset = get_owned(
            session, Dataset, owner_id=owner_id, id=model.dataset_id, what="dataset"
        )
        kind = staging.check_kind()
        name = check_name(upload.fields.get("name"), default=upload.filename)
        staging.check_quota(session, owner_id)
        summary = staging.validate(
            session,
            validation.ingest_failure_batch,
            list(dataset.class_names),
            tuple(dataset.image_shape),
            ingest_limits(settings.uploads),
            sandbox=settings.sandbox,
        )
        rejected = [
            {"file": str(r["file"]), "reason": str(r["reason"])} for r in summary["rejected"]
        ]
        if int(summary["accepted"]) == 0:
            raise InvalidInputError(
                f"{FAILURE_BATCH_FORM.what}: no image was accepted ({len(rejected)} rejected; "
                f"the first {min(len(rejected), MAX_LISTED_REJECTIONS)} are listed)",
                code="no_images_accepted",
                errors=rejected[:MAX_LISTED_REJECTIONS],
            )
        staging.publish(owner_id)
        batch = FailureBatch(
            **staging.upload_columns(owner_id=owner_id, name=name, kind=kind),
            model_id=model.id,
            accepted=int(summary["accepted"]),
            unlabeled=int(summary.get("unlabeled", 0)),
            rejected=rejected,
        )
        staging.commit(session, batch, parent=(Model, model.id, "model"))
        return batch


def check_model_exists(session: Session, *, owner_id: uuid.UUID, model_id: uuid.UUID) -> None:
    """404 before the body is read when the model is not the caller's."""
    get_owned(session, Model, owner_id=owner_id, id=model_id, what="model")
    session.commit()


def list_failure_batches(
    session: Session, *, owner_id: uuid.UUID, model_id: uuid.UUID
) -> list[FailureBatch]:
    get_owned(session, Model, owner_id=owner_id, id=model_id, what="model")
    return list(
        session.scalars(
            sa.select(FailureBatch)
            .where(FailureBatch.owner_id == owner_id, FailureBatch.model_id == model_id)
            .order_by(FailureBatch.created_at, FailureBatch.id)
        )
    )


def get_failure_batch(
    session: Session, *, owner_id: uuid.UUID, model_id: uuid.UUID, batch_id: uuid.UUID
) -> FailureBatch:
    batch = get_owned(session, FailureBatch, owner_id=owner_id, id=batch_id, what="failure batch")
    if batch.model_id != model_id:
        raise NotFoundError(f"failure batch {batch_id} not found for model {model_id}")
    return batch
