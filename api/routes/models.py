"""`/v1/models`: upload a deployed checkpoint (streamed multipart), list, get."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from api.deps import OwnerDep, SessionDep, SettingsDep, StoreDep
from api.schemas.common import problem_responses
from api.schemas.models import ModelPublic, ModelsPublic
from api.services import models
from api.uploads.forms import MODEL_BODY
from api.uploads.receive import receive_and_create

router = APIRouter(prefix="/models", tags=["models"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelPublic,
    openapi_extra=MODEL_BODY,
    responses=problem_responses(400, 401, 404, 413, 415, 422, 503),
)
async def upload_model(
    request: Request,
    response: Response,
    owner: OwnerDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> ModelPublic:
    """Upload a deployed model for one of your datasets. It is loaded safely (never
    unpickled), run once on the dataset's image shape, checked against its class count,
    and stored as safetensors."""
    model = await receive_and_create(
        request,
        models.create_model,
        session=session,
        owner_id=owner.id,
        store=store,
        settings=settings,
        max_file_bytes=settings.uploads.checkpoint_bytes,
        what=models.WHAT,
        allowed_fields=models.FIELDS,
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
