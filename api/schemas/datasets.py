"""Dataset responses. Datasets are created by multipart upload (see the route)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import Rejected


class DatasetPublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "0b7e4a52-3a8e-4c1e-9b8e-5f3d2f0e4c11",
                    "name": "cifar10",
                    "original_filename": "cifar10.tar.gz",
                    "source_format": "tar.gz",
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "size_bytes": 170498071,
                    "class_names": ["airplane", "automobile", "bird"],
                    "num_classes": 3,
                    "image_shape": [3, 32, 32],
                    "split_counts": {"train": 50000, "test": 10000},
                    "skipped": [],
                    "created_at": "2026-11-26T10:00:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    name: str
    original_filename: str
    source_format: str
    sha256: str
    size_bytes: int
    class_names: list[str]
    num_classes: int
    image_shape: list[int] = Field(description="[channels, height, width]")
    split_counts: dict[str, int]
    skipped: list[Rejected] = Field(description="undecodable files skipped (within tolerance)")
    created_at: datetime


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int
