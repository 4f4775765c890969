"""OpenAPI request bodies of the upload routes, which parse their multipart body by hand
(streaming) and so declare it here instead of through parameters."""

from __future__ import annotations

from typing import Any

_SHA = {
    "type": "string",
    "pattern": "^[0-9a-fA-F]{64}$",
    "description": "optional SHA-256 of the file; a mismatch answers 422",
}
_NAME = {"type": "string", "maxLength": 255, "description": "display name (default: file name)"}


def multipart_body(file_description: str, **fields: dict[str, Any]) -> dict[str, Any]:
    required = ["file", *[k for k, v in fields.items() if v.pop("required", False)]]
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": file_description,
                            },
                            **fields,
                        },
                        "required": required,
                    }
                }
            },
        }
    }


DATASET_BODY = multipart_body(
    "ImageFolder-style .tar / .tar.gz / .zip with train/ and test/ (optional val/) "
    "class folders, or an .npz with x_train, y_train, x_test, y_test",
    name=dict(_NAME),
    sha256=dict(_SHA),
)
MODEL_BODY = multipart_body(
    "a repair_core .safetensors checkpoint, or a .pt state dict (with `genotype`)",
    dataset_id={"type": "string", "format": "uuid", "required": True},
    name=dict(_NAME),
    genotype={"type": "string", "description": "JSON genotype or DARTS notation (for .pt)"},
    network_config={"type": "string", "description": "JSON object: network config (for .pt)"},
    sha256=dict(_SHA),
)
FAILURE_BATCH_BODY = multipart_body(
    "a .tar / .tar.gz / .zip of images with a labels manifest (labels.csv or labels.json: "
    "file, label), or an .npz with x, y",
    name=dict(_NAME),
    sha256=dict(_SHA),
)
