"""`/v1/models/{model_id}/failure-batches`: upload images the model gets wrong, list,
delete."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import OwnerDep, SessionDep, StoreDep, UploadDep
from api.schemas.common import problem_responses
from api.schemas.failures import FailureBatchesPublic, FailureBatchPublic
from api.services import deletion, failures
from api.uploads.forms import FAILURE_BATCH_FORM

router = APIRouter(prefix="/models/{model_id}/failure-batches", tags=["failure batches"])


@router.post("", **FAILURE_BATCH_FORM.route(FailureBatchPublic))
async def upload_failure_batch(
    model_id: uuid.UUID, upload: UploadDep, response: Response
) -> FailureBatchPublic:
    """Attach field images with their true labels to a model. The response says how
    many were accepted and lists each rejected file with the reason."""
    # An unknown model answers 404 before the body is read.
    await upload.gate.run(
        lambda s: failures.check_model_exists(s, owner_id=upload.owner_id, model_id=model_id)
    )
    batch = await upload.create(
        failures.create_failure_batch,
        FAILURE_BATCH_FORM,
        max_file_bytes=upload.settings.uploads.failure_batch_bytes,
        model_id=model_id,
    )
    response.headers["Location"] = f"/v1/models/{model_id}/failure-batches/{batch.id}"
    return FailureBatchPublic.model_validate(batch)


@router.get("", response_model=FailureBatchesPublic, responses=problem_responses(401, 404, 503))
def list_failure_batches(
    model_id: uuid.UUID, owner: OwnerDep, session: SessionDep
) -> FailureBatchesPublic:
    rows = failures.list_failure_batches(session, owner_id=owner.id, model_id=model_id)
    return FailureBatchesPublic(
        data=[FailureBatchPublic.model_validate(r) for r in rows], count=len(rows)
    )


@router.get(
    "/{batch_id}", response_model=FailureBatchPublic, responses=problem_responses(401, 404, 503)
)
def get_failure_batch(
    model_id: uuid.UUID, batch_id: uuid.UUID, owner: OwnerDep, session: SessionDep
) -> FailureBatchPublic:
    batch = failures.get_failure_batch(
        session, owner_id=owner.id, model_id=model_id, batch_id=batch_id
    )
    return FailureBatchPublic.model_validate(batch)


@router.delete(
    "/{batch_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409, 503),
)
def delete_failure_batch(
    model_id: uuid.UUID, batch_id: uuid.UUID, owner: OwnerDep, session: SessionDep, store: StoreDep
) -> Response:
    """Delete the batch and free its storage; 409 while a repair job uses it."""
    deletion.delete_failure_batch(
        session, store, owner_id=owner.id, model_id=model_id, batch_id=batch_id
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
