"""Models: validate an uploaded checkpoint in the sandbox (safe load + forward pass on the
dataset's image shape + class count), store it as safetensors, list, get."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy.orm import Session

from api.db.models import Dataset, Model
from api.errors import InvalidInputError
from api.services.common import check_name, get_owned, list_owned, parse_uuid
from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads import validation
from api.uploads.forms import MODEL_FORM
from api.uploads.multipart import ReceivedUpload
from api.uploads.staging import UploadStaging
from repair_core.choices import MODEL_FAMILIES


def create_model(
    session: Session,
    *,
    owner_id: uuid.UUID,
    upload: ReceivedUpload,
    store: ArtifactStore,
    settings: Settings,
) -> Model:
    """Validate and store an uploaded checkpoint for one of the owner's datasets.

    Takes ownership of the upload's temp file. On any failure nothing is left behind.
    """
    with UploadStaging(
        upload, store, MODEL_FORM, suffix=".safetensors", settings=settings
    ) as staging:
        fields = upload.fields
        if "dataset_id" not in fields:
            raise InvalidInputError(
                "form field `dataset_id` is required: the dataset the model was trained on",
                errors=[{"loc": ["body", "dataset_id"], "message": "field required"}],
            )
        dataset_id = parse_uuid(fields["dataset_id"], field="dataset_id")
        dataset = get_owned(session, Dataset, owner_id=owner_id, id=dataset_id, what="dataset")
        kind = staging.check_kind()
        name = check_name(fields.get("name"), default=upload.filename)
        family = _family(fields.get("family"), kind)
        staging.suffix = ".onnx" if family == "onnx" else ".safetensors"
        if family != "darts":
            staging.check_quota(session, owner_id)
            summary = staging.validate(
                session,
                validation.validate_deployed_model,
                kind,
                family,
                _architecture(fields.get("architecture"), family),
                _input_shape(fields.get("input_size"), tuple(dataset.image_shape)),
                list(dataset.class_names),
                *_normalization(fields, int(dataset.image_shape[0])),
                sandbox=settings.sandbox,
                # The state dict, the built network and the re-saved copy.
                extra_memory_bytes=3 * upload.stored.size,
            )
            return _commit(session, staging, owner_id, name, kind, dataset, family, summary,
                           architecture=fields.get("architecture"))  # fmt: skip
        genotype = fields.get("genotype") or None
        network_config = _json_object_field(fields.get("network_config"), "network_config")
        if kind == "pt" and genotype is None:
            raise InvalidInputError(
                "a .pt state dict needs the `genotype` form field (JSON or DARTS notation), "
                "or `family` timm / torchvision with `architecture` (its registry name); "
                "or upload a repair_core .safetensors checkpoint, which carries its genotype",
                errors=[{"loc": ["body", "genotype"], "message": "field required for .pt"}],
            )
        staging.check_quota(session, owner_id)
        summary = staging.validate(
            session,
            validation.validate_checkpoint,
            kind,
            tuple(dataset.image_shape),
            list(dataset.class_names),
            genotype,
            network_config,
            sandbox=settings.sandbox,
            # Loading may map the whole file, and re-saving holds a second copy.
            extra_memory_bytes=2 * upload.stored.size,
        )
        return _commit(session, staging, owner_id, name, kind, dataset, family, summary)


def _commit(
    session: Session,
    staging: UploadStaging,
    owner_id: uuid.UUID,
    name: str,
    kind: str,
    dataset: Dataset,
    family: str,
    summary: dict[str, Any],
    *,
    architecture: str | None = None,
) -> Model:
    staging.publish(owner_id)
    flops = summary.get("num_flops")
    model = Model(
        **staging.upload_columns(owner_id=owner_id, name=name, kind=kind),
        dataset_id=dataset.id,
        family=family,
        architecture=architecture.strip() if architecture else None,
        genotype=summary.get("genotype"),
        network_config=summary.get("network_config"),
        input_spec=summary.get("input_spec"),
        num_classes=int(summary["num_classes"]),
        num_parameters=int(summary["num_parameters"]),
        num_flops=None if flops is None else int(flops),
    )
    staging.commit(session, model, parent=(Dataset, dataset.id, "dataset"))
    return model


def _field_error(field: str, message: str, detail: str) -> InvalidInputError:
    return InvalidInputError(message, errors=[{"loc": ["body", field], "message": detail}])


def _family(raw: str | None, kind: str) -> str:
    family = (raw or "").strip() or ("onnx" if kind == "onnx" else "darts")
    if family not in MODEL_FAMILIES:
        raise _field_error(
            "family",
            f"form field `family` is {family[:40]!r}; one of {', '.join(MODEL_FAMILIES)}",
            "unknown family",
        )
    if (family == "onnx") != (kind == "onnx"):
        raise _field_error(
            "family",
            f"family {family} does not fit a .{kind} file: .onnx files are family onnx, "
            "state dicts (.safetensors, .pt) are darts, timm or torchvision",
            "family and file kind disagree",
        )
    return family


def _architecture(raw: str | None, family: str) -> str:
    name = (raw or "").strip()
    if family in ("timm", "torchvision") and not name:
        raise _field_error(
            "architecture",
            f"a {family} model needs the form field `architecture`: its registry name "
            "(e.g. resnet18)",
            "field required",
        )
    return name


def _input_shape(raw: str | None, dataset_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The dataset's (C, H, W); a declared `input_size` [H, W, C] must agree with it."""
    c, h, w = (int(v) for v in dataset_shape)
    if raw is None or not raw.strip():
        return (c, h, w)
    value = _json_field(raw, "input_size")
    if not (
        isinstance(value, list) and len(value) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):  # fmt: skip
        raise _field_error(
            "input_size", "form field `input_size` must be [height, width, channels]", "bad shape"
        )
    if value != [h, w, c]:
        raise _field_error(
            "input_size",
            f"input_size {value} (height, width, channels) differs from the dataset's images "
            f"[{h}, {w}, {c}]",
            "does not match the dataset",
        )
    return (c, h, w)


def _normalization(fields: dict[str, str], channels: int) -> tuple[list[float], list[float]]:
    out: list[list[float]] = []
    for field, default in (("mean", 0.0), ("std", 1.0)):
        raw = fields.get(field)
        value = [default] if raw is None or not raw.strip() else _json_field(raw, field)
        if not (
            isinstance(value, list) and len(value) in (1, channels)
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):  # fmt: skip
            raise _field_error(
                field,
                f"form field `{field}` must be a JSON list of 1 or {channels} numbers",
                "bad normalisation",
            )
        if field == "std" and any(v <= 0 for v in value):
            raise _field_error(field, "form field `std` must be positive", "bad normalisation")
        out.append([float(v) for v in value])
    return out[0], out[1]


def _json_field(raw: str, field: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise _field_error(
            field, f"form field `{field}` is not valid JSON: {exc}", "invalid JSON"
        ) from None


def _json_object_field(raw: str | None, field: str) -> dict[str, object] | None:
    if raw is None or not raw.strip():
        return None
    value = _json_field(raw, field)
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"form field `{field}` must be a JSON object",
            errors=[{"loc": ["body", field], "message": "not an object"}],
        )
    return value


def list_models(session: Session, *, owner_id: uuid.UUID) -> list[Model]:
    return list_owned(session, Model, owner_id=owner_id)


def get_model(session: Session, *, owner_id: uuid.UUID, model_id: uuid.UUID) -> Model:
    return get_owned(session, Model, owner_id=owner_id, id=model_id, what="model")
