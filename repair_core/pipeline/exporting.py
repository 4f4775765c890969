"""The last stage of a repair: the repaired model exported to every `choices.EXPORT_FORMATS`,
and so is every other compared variant's model (the Control's included), each in its own
work directory (`<work_dir>/<variant>`, its own ledger).

Runs once per model (the ledger records it), after the evaluation, on the CPU from the repaired
checkpoint itself, so the files are the same network the `.safetensors` holds. A format
whose export fails its check is recorded with the reason and has no file: the repair and
its other results stand (hours of search are not thrown away over an exporter).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from repair_core import choices
from repair_core.export import INPUT_NAME, ExportCheck, ExportError, export_onnx, export_torchscript
from repair_core.models.store import load_deployed
from repair_core.pipeline.workdir import WorkDir

Exporter = Callable[[torch.nn.Module, Path, tuple[int, int, int], dict[str, str]], ExportCheck]


def _onnx(model: torch.nn.Module, path: Path, shape: tuple[int, int, int],
          metadata: dict[str, str]) -> ExportCheck:  # fmt: skip
    return export_onnx(model, path, input_shape=shape, metadata=metadata)


def _torchscript(model: torch.nn.Module, path: Path, shape: tuple[int, int, int],
                 metadata: dict[str, str]) -> ExportCheck:  # fmt: skip
    return export_torchscript(model, path, input_shape=shape)


# format -> (file name in the work directory, exporter); the keys are `EXPORT_FORMATS`.
EXPORTERS: dict[str, tuple[str, Exporter]] = {
    "onnx": ("model.onnx", _onnx),
    "torchscript": ("model.torchscript.pt", _torchscript),
}
assert tuple(EXPORTERS) == choices.EXPORT_FORMATS


def export_repaired(
    work: WorkDir, checkpoint: Path, input_shape: tuple[int, int, int]
) -> dict[str, dict[str, Any]]:
    """format -> its check (`ExportCheck.to_dict()` plus `file`) or `{"error": reason}`;
    read back from the ledger when already done."""
    if work.done("exporting"):
        formats: dict[str, dict[str, Any]] = work.result("exporting")["formats"]
        return formats
    started = time.perf_counter()
    # A DARTS network, or the deployed registry architecture a baseline retrained: both
    # take [0, 1] pixels and normalise inside.
    loaded = load_deployed(checkpoint, device="cpu")
    c, h, w = input_shape
    spec = loaded.spec
    metadata = {
        "class_names": json.dumps(list(loaded.class_names)),
        "input": f"{INPUT_NAME}: float32 N x {c} x {h} x {w} (NCHW), pixels in [0, 1]; "
        "the graph normalises",
        "normalization": json.dumps({"mean": list(spec.mean), "std": list(spec.std)}),
    }
    formats = {}
    for name, (file_name, exporter) in EXPORTERS.items():
        try:
            check = exporter(loaded.model, work.path(file_name), input_shape, metadata)
        except ExportError as exc:
            formats[name] = {"format": name, "error": str(exc)}
        else:
            formats[name] = {**check.to_dict(), "file": file_name}
    work.finish("exporting", {"formats": formats, "seconds": time.perf_counter() - started})
    return formats


def exported_files(work: WorkDir, formats: dict[str, dict[str, Any]]) -> dict[str, Path]:
    """format -> file, for the exports that passed their check."""
    return {
        name: work.root / str(entry["file"])
        for name, entry in formats.items()
        if "file" in entry and (work.root / str(entry["file"])).is_file()
    }


def export_variants(
    root: WorkDir, checkpoints: Mapping[str, Path], input_shape: tuple[int, int, int]
) -> dict[str, dict[str, dict[str, Any]]]:
    """Variant -> its formats (as `export_repaired`), each exported in `<root>/<variant>`;
    `checkpoints` are the variants other than the primary (exported in `root` itself)."""
    return {
        name: export_repaired(WorkDir(root.root / name), checkpoint, input_shape)
        for name, checkpoint in checkpoints.items()
    }


def exported_variant_files(
    root: WorkDir, formats: Mapping[str, dict[str, dict[str, Any]]]
) -> dict[str, dict[str, Path]]:
    """Variant -> format -> file, for the exports that passed their check."""
    return {name: exported_files(WorkDir(root.root / name), f) for name, f in formats.items()}
