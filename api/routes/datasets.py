"""`/v1/datasets`: upload (streamed multipart), list, get, delete."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Response, status

from api.deps import OwnerDep, SessionDep, StoreDep, UploadDep
from api.schemas.common import problem_responses
from api.schemas.datasets import DatasetPublic, DatasetsPublic
from api.services import datasets, deletion
from api.uploads.forms import DATASET_FORM

router = APIRouter(prefix="/datasets", tags=["datasets"])

_REPLAY: dict[int | str, dict[str, Any]] = {
    200: {"model": DatasetPublic, "description": "Identical upload: the existing dataset"}
}


@router.post("", **DATASET_FORM.route(DatasetPublic, responses=_REPLAY))
async def upload_dataset(upload: UploadDep, response: Response) -> DatasetPublic:
    """Upload the owner's clean data once. It is decoded and validated in a sandbox and
    stored as tensors; re-uploading identical bytes returns the same dataset (200)."""
    dataset, created = await upload.create(
        datasets.create_dataset,
        DATASET_FORM,
        max_file_bytes=upload.settings.uploads.dataset_bytes,
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


@router.delete(
    "/{dataset_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 404, 409, 503),
)
def delete_dataset(
    dataset_id: uuid.UUID, owner: OwnerDep, session: SessionDep, store: StoreDep
) -> Response:
    """Delete the dataset with the models trained on it, their failure batches and their
    finished repairs, and free their storage; 409 while a repair job uses any of them."""
    deletion.delete_dataset(session, store, owner_id=owner.id, dataset_id=dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
