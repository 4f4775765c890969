"""Failure batches: images + true labels from the field, attached to a model.

The sandboxed child decodes them against the model's dataset (class names, image
shape) and reports every rejected file with its reason; accepted images are stored as
npz (`x` uint8 NCHW, `y` int64) for the worker.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api import validation
from api.db.models import Dataset, FailureBatch, Model
from api.errors import InvalidInputError, NotFoundError
from api.filekinds import FAILURE_BATCH_KINDS
from api.services.common import check_name, get_owned
from api.services.uploads import check_upload, discard, ingest_limits, run_validation
from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads import ReceivedUpload

WHAT = "failure batch"
FIELDS = frozenset({"name", "sha256"})
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
    out_tmp = None
    key = None
    try:
        model = get_owned(session, Model, owner_id=owner_id, id=model_id, what="model")
        dataset = get_owned(
            session, Dataset, owner_id=owner_id, id=model.dataset_id, what="dataset"
        )
        kind = check_upload(
            upload,
            kinds=FAILURE_BATCH_KINDS,
            what=WHAT,
            declared_sha256=upload.fields.get("sha256"),
        )
        name = check_name(upload.fields.get("name"), default=upload.filename)
        session.commit()  # ends the read transaction: no connection held while the child works
        out_tmp = store.temp_path(".npz")
        summary = run_validation(
            validation.ingest_failure_batch,
            str(upload.stored.path),
            str(out_tmp),
            list(dataset.class_names),
            tuple(dataset.image_shape),
            ingest_limits(settings.uploads),
            sandbox=settings.sandbox,
            what=WHAT,
        )
        rejected = [
            {"file": str(r["file"]), "reason": str(r["reason"])} for r in summary["rejected"]
        ]
        if int(summary["accepted"]) == 0:
            raise InvalidInputError(
                f"{WHAT}: no image was accepted ({len(rejected)} rejected; the first "
                f"{min(len(rejected), MAX_LISTED_REJECTIONS)} are listed)",
                code="no_images_accepted",
                errors=rejected[:MAX_LISTED_REJECTIONS],
            )
        key = store.new_key(owner_id, ".npz")
        store.publish(out_tmp, key)
        batch = FailureBatch(
            owner_id=owner_id,
            model_id=model.id,
            name=name,
            original_filename=upload.filename,
            sha256=upload.stored.sha256,
            size_bytes=upload.stored.size,
            source_format=kind,
            storage_key=key,
            accepted=int(summary["accepted"]),
            rejected=rejected,
        )
        session.add(batch)
        session.commit()
        key = None
        return batch
    finally:
        if key is not None:
            store.delete(key)
        discard(out_tmp, upload.stored.path)


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
