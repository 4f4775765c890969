"""Model (deployed checkpoint) responses. Models are created by multipart upload."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelPublic(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "5c1f1e0a-2b6d-4d7e-8a39-0c3b4f5e6d7a",
                    "dataset_id": "0b7e4a52-3a8e-4c1e-9b8e-5f3d2f0e4c11",
                    "name": "deployed-v3",
                    "original_filename": "model.safetensors",
                    "source_format": "safetensors",
                    "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
                    "size_bytes": 13421772,
                    "num_classes": 10,
                    "num_parameters": 3349342,
                    "num_flops": 1074000000,
                    "family": "darts",
                    "architecture": None,
                    "input_spec": {
                        "channels": 3,
                        "height": 32,
                        "width": 32,
                        "mean": [0.49, 0.48, 0.45],
                        "std": [0.25, 0.24, 0.26],
                    },
                    "genotype": {"normal": [["sep_conv_3x3", 0]], "normal_concat": [2, 3]},
                    "created_at": "2026-11-26T10:05:00Z",
                }
            ]
        },
    )

    id: uuid.UUID
    dataset_id: uuid.UUID
    name: str
    original_filename: str
    source_format: str
    sha256: str
    size_bytes: int
    num_classes: int
    num_parameters: int
    num_flops: int | None = None  # per image (FlopCounterMode); None for ONNX models
    family: str = "darts"  # darts | timm | torchvision | onnx
    architecture: str | None = None  # the timm / torchvision registry name
    input_spec: dict[str, Any] | None = None  # channels, height, width, mean, std
    genotype: dict[str, Any] | None
    created_at: datetime


class ModelsPublic(BaseModel):
    data: list[ModelPublic]
    count: int
