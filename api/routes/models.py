"""`/v1/models`: upload a deployed checkpoint (streamed multipart), list, get,
delete."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from api.deps import OwnerDep, SessionDep, StoreDep, UploadDep
from api.schemas.common import problem_responses
from api.schemas.models import ModelPublic, ModelsPublic
from api.services import deletion, models
from api.uploads.forms import MODEL_FORM

router = APIRouter(prefix="/models", tags=["models"])


@router.post("", **MODEL_FORM.route(ModelPublic))
async def upload_model(upload: UploadDep, response: Response) -> ModelPublic:
    """Upload a deployed model for one of your datasets. It is loaded safely (never
    unpickled), run once on the dataset's image shape, checked against its class count,
    and stored as safetensors."""
    model = await upload.create(
        models.create_model, MODEL_FORM, max_file_bytes=upload.settings.uploads.checkpoint_bytes
    )
    response.headers["Location"] = f"/v1/models/{model.id}"
    return ModelPublic.model_validate(model)


@router.get("", response_model=ModelsPublic, responses=problem_responses(401, 503))
def list_models(owner: OwnerDep, session: SessionDep) -> ModelsPublic:
    rows = models.list_models(session, owner_id=owner.id)
    return ModelsPublic(data=[ModelPublic.model_validate(r) for r in rows], count=len(rows))


@router.get("/{model_id}", response_model=ModelPublic, responses=problem_responses(401, 404, 503))
def get_model(model_id: uuid.UUID, owner: OwnerDep, session: SessionDep) -> ModelPublic:
    return ModelPublic.model_validate(
        models.get_model(session, owner_id=owner.id, model_id=model_id)
    )


@router.delete(
    "/{model_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409, 503),
)
def delete_model(
    model_id: uuid.UUID, owner: OwnerDep, session: SessionDep, store: StoreDep
) -> Response:
    """Delete the model with its failure batches and finished repairs, and free their
    storage; 409 while a repair job uses it."""
    deletion.delete_model(session, store, owner_id=owner.id, model_id=model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
