"""Functions that run in the sandboxed child process on untrusted uploads.

Each one parses an uploaded file with `repair_core`'s safe readers, writes the
normalised form (npz tensors / safetensors) to `out_path`, and returns a small summary
dict of plain values (sent back to the API as JSON). Paths are relative to the child's
work folder. torch and repair_core's readers are imported inside the functions so that
the API process, which only names these functions, never loads them. The dataset and
failure-batch validators never import torch at all (the ingest readers work on numpy):
that spares every upload's child about a second of CPU and some 500 MB of memory.

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
    from repair_core.models import model_stats
    from repair_core.models.store import from_loaded

    stats = model_stats(model, tuple(image_shape))  # type: ignore[arg-type]
    return {
        "num_classes": int(logits.shape[1]),
        "num_parameters": stats.params,
        "num_flops": stats.flops,
        "input_spec": from_loaded(loaded).spec.to_dict(),
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
    if int(image_shape[2]) != int(image_shape[1]):
        values.setdefault("image_width", int(image_shape[2]))
    return NetworkConfig.from_dict(values)


@validator
def validate_deployed_model(
    upload_path: str,
    out_path: str,
    kind: str,
    family: str,
    architecture: str,
    image_shape: tuple[int, int, int],
    class_names: list[str],
    mean: list[float],
    std: list[float],
) -> dict[str, Any]:
    """Build a timm / torchvision architecture by registry name and load the uploaded
    state dict strictly, or check an ONNX graph (see `repair_core.models.onnx_net`); run a
    probe forward on the dataset's image shape, count parameters and FLOPs, and store it
    in the deployed-model format. Returns plain JSON-able values."""
    import torch

    from repair_core.checkpoint import read_state_dict
    from repair_core.models import InputSpec, model_stats
    from repair_core.models.onnx_net import OnnxNet, prepare_onnx
    from repair_core.models.store import registry_model, save_onnx_model, save_registry_model

    c, h, w = (int(v) for v in image_shape)
    spec = InputSpec(c, h, w, tuple(mean), tuple(std))
    flops: int | None
    if family == "onnx":
        prepared = prepare_onnx(Path(upload_path).read_bytes())
        model: torch.nn.Module = OnnxNet(prepared, spec)
        params, flops = prepared.params, None  # FlopCounterMode sees no torch ops in ORT
    else:
        state = read_state_dict(upload_path, kind)
        deployed = registry_model(
            family, architecture, spec, class_names, state, source=f"{family} {architecture}"
        )
        model = deployed.model
        stats = model_stats(model, spec.shape)
        params, flops = stats.params, stats.flops
    _probe(model, spec.shape, class_names)
    if family == "onnx":
        save_onnx_model(out_path, prepared, spec, class_names)
    else:
        save_registry_model(out_path, deployed)
    return {
        "num_classes": len(class_names),
        "num_parameters": int(params),
        "num_flops": None if flops is None else int(flops),
        "input_spec": spec.to_dict(),
    }


def _probe(model: Any, image_shape: tuple[int, int, int], class_names: list[str]) -> None:
    """A forward pass on a probe batch: logits of the right class count, finite."""
    import torch

    from repair_core.errors import RepairInputError

    shape_text = "x".join(str(v) for v in image_shape)
    probe = torch.rand(2, *image_shape, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            logits = model(probe)
            features = model.features(probe)
    except RepairInputError:
        raise
    except (RuntimeError, ValueError, IndexError, TypeError) as exc:
        raise RepairInputError(
            f"a forward pass on images of {shape_text} (channels x height x width) failed: "
            f"{str(exc)[:300]}"
        ) from None
    if tuple(logits.shape) != (2, len(class_names)):
        raise RepairInputError(
            f"the model outputs shape {tuple(logits.shape)[1:]} per image but its dataset has "
            f"{len(class_names)} classes ({', '.join(class_names[:10])})"
        )
    if features.dim() != 2 or features.shape[0] != 2:
        raise RepairInputError(f"penultimate features have shape {tuple(features.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise RepairInputError(f"a forward pass on images of {shape_text} gives NaN or Inf")


@validator
def probe() -> dict[str, Any]:
    """Nothing: the API runs it once to learn what confinement a child gets on this host
    (`api.uploads.sandbox_probe`)."""
    return {}
