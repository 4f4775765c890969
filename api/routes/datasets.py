"""`/v1/datasets`: upload (streamed multipart), list, get."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from api.deps import OwnerDep, SessionDep, SettingsDep, StoreDep
from api.schemas.common import problem_responses
from api.schemas.datasets import DatasetPublic, DatasetsPublic
from api.services import datasets
from api.uploads.forms import DATASET_BODY
from api.uploads.receive import receive_and_create

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetPublic,
    openapi_extra=DATASET_BODY,
    responses={
        200: {"model": DatasetPublic, "description": "Identical upload: the existing dataset"},
        **problem_responses(400, 401, 404, 413, 415, 422, 503),
    },
)
async def upload_dataset(
    request: Request,
    response: Response,
    owner: OwnerDep,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
) -> DatasetPublic:
    """Upload the owner's clean data once. It is decoded and validated in a sandbox and
    stored as tensors; re-uploading identical bytes returns the same dataset (200)."""
    dataset, created = await receive_and_create(
        request,
        datasets.create_dataset,
        session=session,
        owner_id=owner.id,
        store=store,
        settings=settings,
        max_file_bytes=settings.uploads.dataset_bytes,
        what=datasets.WHAT,
        allowed_fields=datasets.FIELDS,
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetPublic.model_validate(dataset)


@router.get("", response_model=DatasetsPublic, responses=problem_responses(401, 503))
def list_datasets(owner: OwnerDep, session: SessionDep) -> DatasetsPublic:
    rows = datasets.list_datasets(session, owner_id=owner.id)
    return DatasetsPublic(data=[DatasetPublic.model_validate(r) for r in rows], count=len(rows))


@router.get(
    "/{dataset_id}", response_model=DatasetPublic, responses=problem_responses(401, 404, 503)
)
def get_dataset(dataset_id: uuid.UUID, owner: OwnerDep, session: SessionDep) -> DatasetPublic:
    row = datasets.get_dataset(session, owner_id=owner.id, dataset_id=dataset_id)
    return DatasetPublic.model_validate(row)
