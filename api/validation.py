"""Functions that run in the sandboxed child process on untrusted uploads.

Each one parses an uploaded file with `repair_core`'s safe readers, writes the
normalised form (npz tensors / safetensors) to `out_path`, and returns a small summary
dict of plain values. torch and repair_core are imported inside the functions so that
the API process, which only names these functions, never loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _ingest_limits(limits: dict[str, int]) -> Any:
    from repair_core.datasets.limits import IngestLimits

    return IngestLimits(**limits)


def _rejected(items: Any) -> list[dict[str, str]]:
    return [{"file": str(r.file), "reason": str(r.reason)} for r in items]


def ingest_dataset(upload_path: str, out_path: str, limits: dict[str, int]) -> dict[str, Any]:
    """Decode a dataset archive or npz and store it as npz splits."""
    from repair_core.datasets.archive import detect_kind
    from repair_core.datasets.imagefolder import read_imagefolder
    from repair_core.datasets.npz import read_npz_splits, write_npz_splits

    path = Path(upload_path)
    ingest_limits = _ingest_limits(limits)
    skipped: list[dict[str, str]] = []
    if detect_kind(path) == "npz":
        splits = read_npz_splits(path, ingest_limits)
    else:
        result = read_imagefolder(path, ingest_limits)
        splits = result.splits
        skipped = _rejected(result.skipped)
    write_npz_splits(Path(out_path), splits)
    counts = {"train": len(splits.train), "test": len(splits.test)}
    if splits.val is not None:
        counts["val"] = len(splits.val)
    return {
        "class_names": list(splits.class_names),
        "image_shape": list(splits.image_shape),
        "split_counts": counts,
        "skipped": skipped,
    }


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
        model, genotype, config = loaded.model, loaded.genotype, loaded.config
    else:
        genotype = _parse_genotype(genotype_text or "")
        config = _network_config(network_config, image_shape, len(class_names))
        model = load_state_dict_checkpoint(path, genotype, config)
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, *image_shape))
    logits = out[0] if isinstance(out, tuple) else out
    if logits.dim() != 2 or logits.shape[0] != 1:
        raise RepairInputError(
            f"checkpoint: forward pass on shape (1, {', '.join(map(str, image_shape))}) gave "
            f"output shape {tuple(logits.shape)}, expected (1, {len(class_names)})"
        )
    if logits.shape[1] != len(class_names):
        shown = ", ".join(class_names[:10]) + (", ..." if len(class_names) > 10 else "")
        raise RepairInputError(
            f"checkpoint outputs {logits.shape[1]} classes but its dataset has "
            f"{len(class_names)} ({shown})"
        )
    if not bool(torch.isfinite(logits).all()):
        raise RepairInputError("checkpoint: forward pass on zeros gives NaN or Inf")
    save_model(Path(out_path), model, class_names=tuple(class_names))
    return {
        "num_classes": int(logits.shape[1]),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "genotype": _genotype_json(genotype),
        "network_config": _config_json(config),
    }


def _parse_genotype(text: str) -> Any:
    from repair_core.search.genotype import Genotype

    from repair_core.errors import RepairInputError

    text = text.strip()
    if not text:
        raise RepairInputError("genotype: empty")
    if text.startswith("{"):
        return Genotype.from_json(text)
    try:
        return Genotype.from_darts_notation(text)
    except RepairInputError:
        raise
    except Exception as exc:
        raise RepairInputError(f"genotype: cannot parse {text[:80]!r}: {exc}") from exc


def _network_config(
    given: dict[str, Any] | None, image_shape: tuple[int, int, int], num_classes: int
) -> Any:
    from repair_core.search.network import NetworkConfig

    from repair_core.errors import RepairInputError

    values = dict(given or {})
    values.setdefault("num_classes", num_classes)
    try:
        return NetworkConfig(**values)
    except TypeError as exc:
        raise RepairInputError(f"network_config: {exc}") from exc


def _genotype_json(genotype: Any) -> dict[str, Any] | None:
    import json

    if genotype is None:
        return None
    value = json.loads(genotype.to_json())
    return value if isinstance(value, dict) else {"genotype": value}


def _config_json(config: Any) -> dict[str, Any] | None:
    import dataclasses

    if config is None or not dataclasses.is_dataclass(config):
        return None
    return dataclasses.asdict(config)  # type: ignore[arg-type]


def ingest_failure_batch(
    upload_path: str,
    out_path: str,
    class_names: list[str],
    image_shape: tuple[int, int, int],
    limits: dict[str, int],
) -> dict[str, Any]:
    """Decode field images + labels against the model's dataset; store the accepted ones
    as npz (`x` uint8 NCHW, `y` int64) and report every rejected file with its reason."""
    import numpy as np
    from repair_core.datasets.failures import read_failure_batch

    result = read_failure_batch(
        Path(upload_path),
        class_names=tuple(class_names),
        image_shape=tuple(image_shape),
        limits=_ingest_limits(limits),
    )
    dataset = result.dataset
    with open(out_path, "wb") as f:
        np.savez(f, x=dataset.images.cpu().numpy(), y=dataset.labels.cpu().numpy())
    return {"accepted": len(dataset), "rejected": _rejected(result.rejected)}
