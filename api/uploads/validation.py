"""Functions that run in the sandboxed child process on untrusted uploads.

Each one parses an uploaded file with `repair_core`'s safe readers, writes the
normalised form (npz tensors / safetensors) to `out_path`, and returns a small summary
dict of plain values (sent back to the API as JSON). Paths are relative to the child's
work folder. torch and repair_core's readers are imported inside the functions so that
the API process, which only names these functions, never loads them.

A new validator is a module-level function here with `@validator` on it (the sandbox
runs nothing else), called through `UploadStaging.validate`; its arguments and result
are JSON values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.uploads.sandbox import validator


def _ingest_limits(limits: dict[str, int]) -> Any:
    from repair_core.datasets.ingest.limits import IngestLimits

    return IngestLimits(**limits)


def _rejected(items: Any) -> list[dict[str, str]]:
    return [{"file": str(r.file), "reason": str(r.reason)} for r in items]


@validator
def ingest_dataset(upload_path: str, out_path: str, limits: dict[str, int]) -> dict[str, Any]:
    """Decode a dataset archive or npz and store it as npz splits."""
    from repair_core.datasets.ingest import ingest_dataset as ingest

    summary = ingest(Path(upload_path), Path(out_path), _ingest_limits(limits))
    return {
        "class_names": list(summary.class_names),
        "image_shape": [int(v) for v in summary.image_shape],
        "split_counts": {k: int(v) for k, v in summary.counts.items()},
        "skipped": _rejected(summary.skipped),
    }


@validator
def ingest_failure_batch(
    upload_path: str,
    out_path: str,
    class_names: list[str],
    image_shape: tuple[int, int, int],
    limits: dict[str, int],
) -> dict[str, Any]:
    """Decode field images + labels against the model's dataset; store the accepted ones
    as npz (`x` uint8 NCHW, `y` int64, -1 where unlabeled) and report every rejected file
    with its reason."""
    from repair_core.datasets.ingest import ingest_failure_batch as ingest

    summary = ingest(
        Path(upload_path),
        Path(out_path),
        class_names=tuple(class_names),
        image_shape=(int(image_shape[0]), int(image_shape[1]), int(image_shape[2])),
        limits=_ingest_limits(limits),
    )
    return {
        "accepted": int(summary.accepted),
        "unlabeled": int(summary.unlabeled),
        "rejected": _rejected(summary.rejected),
    }


@validator
def validate_checkpoint(
    upload_path: str,
    out_path: str,
    kind: str,
    image_shape: tuple[int, int, int],
    class_names: list[str],
    genotype_text: str | None,
    network_config: dict[str, Any] | None,
) -> dict[str, Any]:
    """Load a checkpoint safely, run one forward pass on zeros of the dataset's image
    shape, check its class count, and re-save it as a repair_core safetensors file."""
    import torch

    from repair_core.checkpoint import load_model, load_state_dict_checkpoint, save_model
    from repair_core.errors import RepairInputError

    path = Path(upload_path)
    if kind == "safetensors":
        loaded = load_model(path, device="cpu")
    else:
        genotype = _parse_genotype(genotype_text or "")
        config = _network_config(network_config, image_shape, len(class_names))
        loaded = load_state_dict_checkpoint(path, genotype, config, class_names=class_names)
    model = loaded.model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, *image_shape))
    logits = out[0] if isinstance(out, tuple) else out
    shape_text = ", ".join(str(v) for v in image_shape)
    if logits.dim() != 2 or logits.shape[0] != 1:
        raise RepairInputError(
            f"checkpoint: a forward pass on shape (1, {shape_text}) gave output shape "
            f"{tuple(logits.shape)}, expected (1, {len(class_names)})"
        )
    if logits.shape[1] != len(class_names):
        shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
        raise RepairInputError(
            f"checkpoint outputs {logits.shape[1]} classes but its dataset has "
            f"{len(class_names)} ({shown})"
        )
    if not bool(torch.isfinite(logits).all()):
        raise RepairInputError(
            f"checkpoint: a forward pass on zeros of shape (1, {shape_text}) gives NaN or Inf"
        )
    save_model(Path(out_path), model, class_names=class_names)
    return {
        "num_classes": int(logits.shape[1]),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "genotype": loaded.genotype.to_dict(),
        "network_config": loaded.config.to_dict(),
    }


def _parse_genotype(text: str) -> Any:
    """A genotype as JSON (`Genotype.to_json`) or in DARTS notation
    (`Genotype(normal=[('sep_conv_3x3', 0), ...], ...)`)."""
    from repair_core.errors import RepairInputError
    from repair_core.search.genotype import Genotype

    text = text.strip()
    if not text:
        raise RepairInputError("genotype: the form field is empty")
    if text.startswith("{"):
        return Genotype.from_json(text)
    return Genotype.from_darts_notation(text)


def _network_config(
    given: dict[str, Any] | None, image_shape: tuple[int, int, int], num_classes: int
) -> Any:
    """The declared network config; class count and input size default to the dataset's."""
    from repair_core.search.network import NetworkConfig

    values = dict(given or {})
    values.setdefault("num_classes", num_classes)
    values.setdefault("in_channels", int(image_shape[0]))
    values.setdefault("image_size", int(image_shape[1]))
    return NetworkConfig.from_dict(values)
