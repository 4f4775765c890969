"""Failure batch responses: how many images were accepted and which were rejected, why."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import Rejected


class FailureBatchPublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "7d2b9c1e-4f3a-4b8c-9d0e-1a2b3c4d5e6f",
                    "model_id": "5c1f1e0a-2b6d-4d7e-8a39-0c3b4f5e6d7a",
                    "name": "field-fog-2026-11",
                    "original_filename": "fog.zip",
                    "source_format": "zip",
                    "sha256": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
                    "size_bytes": 2048000,
                    "accepted": 998,
                    "unlabeled": 0,
                    "rejected": [{"file": "img_17.png", "reason": "label 12 outside [0, 10)"}],
                    "created_at": "2026-11-26T10:10:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    model_id: uuid.UUID
    name: str
    original_filename: str
    source_format: str
    sha256: str
    size_bytes: int
    accepted: int
    unlabeled: int = Field(0, description="accepted images without a label, taken on trust")
    rejected: list[Rejected]
    created_at: datetime


class FailureBatchesPublic(BaseModel):
    data: list[FailureBatchPublic]
    count: int
