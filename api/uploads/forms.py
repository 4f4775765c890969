"""Each upload route's multipart form: one `file` part and a few small text fields.

The upload routes parse their body by hand (streaming), so FastAPI cannot describe it
from parameters. A form is the one place that names its fields: the multipart parser
refuses any other, the services read them, and the route's OpenAPI request body is
built from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from api.schemas.common import problem_responses
from api.uploads.filekinds import CHECKPOINT_KINDS, DATASET_KINDS

# What an upload route can answer besides its resource: bad form, key, unknown parent,
# over a cap or the quota, wrong kind, invalid content, a rate limit or the concurrent
# upload cap, database down, disk full.
UPLOAD_PROBLEMS = (400, 401, 404, 413, 415, 422, 429, 503, 507)

_SHA = {
    "type": "string",
    "pattern": "^[0-9a-fA-F]{64}$",
    "description": "optional SHA-256 of the file; a mismatch answers 422",
}
_NAME = {"type": "string", "maxLength": 255, "description": "display name (default: file name)"}


@dataclass(frozen=True)
class UploadForm:
    what: str  # how messages name the file, e.g. "dataset archive"
    kinds: Mapping[str, str]  # accepted file name suffix -> kind (`api.uploads.filekinds`)
    file_description: str  # of the `file` part, in the OpenAPI document
    fields: Mapping[str, Mapping[str, Any]]  # text field -> its JSON schema
    required: tuple[str, ...] = ()  # the text fields that must be sent

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(self.fields)

    def openapi_extra(self) -> dict[str, Any]:
        """The OpenAPI request body: multipart/form-data with `file` and the fields."""
        file_part = {"type": "string", "format": "binary", "description": self.file_description}
        return {
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": file_part,
                                **{name: dict(schema) for name, schema in self.fields.items()},
                            },
                            "required": ["file", *self.required],
                        }
                    }
                },
            }
        }

    def route(
        self,
        response_model: type[BaseModel],
        *,
        responses: Mapping[int | str, dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The `router.post` arguments of the route that receives this form: 201 with
        `response_model`, this request body, the problems of an upload (and `responses`)."""
        return {
            "status_code": 201,
            "response_model": response_model,
            "openapi_extra": self.openapi_extra(),
            "responses": {**(responses or {}), **problem_responses(*UPLOAD_PROBLEMS)},
        }


def _archive_form(what: str, file_description: str) -> UploadForm:
    """An archive or .npz of images, with the optional display name and digest."""
    return UploadForm(
        what=what,
        kinds=DATASET_KINDS,
        file_description=file_description,
        fields={"name": _NAME, "sha256": _SHA},
    )


DATASET_FORM = _archive_form(
    "dataset archive",
    "ImageFolder-style .tar / .tar.gz / .zip with train/ and test/ (optional val/) class "
    "folders, or an .npz with x_train, y_train, x_test, y_test",
)
FAILURE_BATCH_FORM = _archive_form(
    "failure batch",
    "a .tar / .tar.gz / .zip of images with a labels manifest (labels.csv or labels.json: "
    "file, label), or an .npz with x, y",
)
MODEL_FORM = UploadForm(
    what="checkpoint",
    kinds=CHECKPOINT_KINDS,
    file_description=(
        "a repair_core .safetensors checkpoint; a .pt state dict with `genotype`; a state dict "
        "(.safetensors or .pt) with `family` timm or torchvision and `architecture`; or .onnx"
    ),
    fields={
        "dataset_id": {"type": "string", "format": "uuid"},
        "name": _NAME,
        "family": {
            "type": "string",
            "enum": ["darts", "timm", "torchvision", "onnx"],
            "description": "deployed-model family (default: onnx for .onnx files, else darts)",
        },
        "architecture": {
            "type": "string",
            "maxLength": 128,
            "description": "registry name for timm / torchvision, e.g. resnet18",
        },
        "mean": {
            "type": "string",
            "description": "JSON list: input normalisation mean per channel (default [0])",
        },
        "std": {
            "type": "string",
            "description": "JSON list: input normalisation std per channel (default [1])",
        },
        "input_size": {
            "type": "string",
            "description": "JSON [height, width, channels]; must match the dataset's images",
        },
        "genotype": {"type": "string", "description": "JSON genotype or DARTS notation (for .pt)"},
        "network_config": {
            "type": "string",
            "description": "JSON object: network config (for .pt)",
        },
        "sha256": _SHA,
    },
    required=("dataset_id",),
)
