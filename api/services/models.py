"""Models: validate an uploaded checkpoint in the sandbox (safe load + forward pass on the
dataset's image shape + class count), store it as safetensors, list, get."""

from __future__ import annotations

import json
import uuid

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
        genotype = fields.get("genotype") or None
        network_config = _json_object_field(fields.get("network_config"), "network_config")
        if kind == "pt" and genotype is None:
            raise InvalidInputError(
                "a .pt state dict needs the `genotype` form field (JSON or DARTS notation); "
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
        staging.publish(owner_id)
        model = Model(
            **staging.upload_columns(owner_id=owner_id, name=name, kind=kind),
            dataset_id=dataset.id,
            genotype=summary.get("genotype"),
            network_config=summary.get("network_config"),
            num_classes=int(summary["num_classes"]),
            num_parameters=int(summary["num_parameters"]),
        )
        staging.commit(session, model, parent=(Dataset, dataset.id, "dataset"))
        return model


def _json_object_field(raw: str | None, field: str) -> dict[str, object] | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            f"form field `{field}` is not valid JSON: {exc.msg} at position {exc.pos}",
            errors=[{"loc": ["body", field], "message": "invalid JSON"}],
        ) from exc
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
