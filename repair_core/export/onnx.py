"""ONNX export of a classifier: normalisation inside the graph, dynamic batch dimension,
checked with onnxruntime against PyTorch before the file is written.

The graph takes `pixels`, float32 N x C x H x W in [0, 1] (uint8 pixels / 255), and
returns `logits`, float32 N x classes. Two exporters are tried in order:

1. the TorchScript-based `torch.onnx.export(..., dynamo=False)`: present and working on
   torch 2.11 and 2.14, and fast (a smoke network in ~0.1 s on a CPU, where the dynamo
   path takes 3-8 s: every job exports, so this is seconds on every test repair);
2. the dynamo exporter (`dynamo=True`), for a torch where the first is gone or fails.

The first whose graph matches PyTorch within the tolerance is kept; when none does, the
error names each exporter's reason.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from repair_core.atomic import write_bytes_atomic
from repair_core.export.check import (
    INPUT_NAME,
    OUTPUT_NAME,
    TOLERANCE,
    ExportCheck,
    ExportError,
    max_abs_diff,
    probe_batches,
    reference_logits,
    require_match,
)

OPSET = 17  # onnxruntime >= 1.11 runs it; the dynamo path may raise it to its minimum


def export_onnx(
    model: torch.nn.Module,
    path: Path,
    *,
    input_shape: tuple[int, int, int],
    metadata: Mapping[str, str] | None = None,
    tolerance: float = TOLERANCE,
) -> ExportCheck:
    """Export `model` (a copy, on the CPU, in eval mode) to `path`, atomically, once its
    onnxruntime logits match PyTorch's; `metadata` goes into the graph's metadata_props."""
    model = copy.deepcopy(model).cpu().eval()
    reasons = []
    for name, exporter in _EXPORTERS:
        try:
            data = _with_metadata(exporter(model, input_shape), metadata or {})
            diff = check_onnx(data, model, input_shape)
            require_match(f"ONNX ({name})", diff, tolerance)
        except Exception as exc:  # any exporter failure means: try the next one
            reasons.append(f"{name}: {type(exc).__name__}: {str(exc)[:300]}")
            continue
        write_bytes_atomic(path, data)
        batches = tuple(len(b) for b in probe_batches(input_shape))
        return ExportCheck("onnx", name, diff, batches, input_shape, tolerance)
    raise ExportError("ONNX export failed: " + "; ".join(reasons))


def check_onnx(data: bytes, model: torch.nn.Module, input_shape: tuple[int, int, int]) -> float:
    """Max abs logit difference between onnxruntime on `data` and `model`, over the probe
    batches (batch 1 and more, so a fixed batch dimension fails here)."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    if inputs != [INPUT_NAME]:
        raise ExportError(f"ONNX graph inputs are {inputs}, expected [{INPUT_NAME!r}]")
    diff = 0.0
    for images in probe_batches(input_shape):
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
        diff = max(diff, max_abs_diff(reference_logits(model, images), torch.from_numpy(got)))
    return diff


def _legacy(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # It warns that it is deprecated in favour of dynamo, which is our fallback.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.zeros(2, *input_shape),),
            buffer,  # type: ignore[arg-type]  # the TorchScript-based path takes a file object
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def _dynamo(model: torch.nn.Module, input_shape: tuple[int, int, int]) -> bytes:
    program = torch.onnx.export(
        model,
        (torch.zeros(2, *input_shape),),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=max(OPSET, 18),
        dynamo=True,
        verbose=False,
    )
    if program is None:
        raise ExportError("the dynamo exporter returned no program")
    return bytes(program.model_proto.SerializeToString())


_EXPORTERS: tuple[tuple[str, Callable[[torch.nn.Module, tuple[int, int, int]], bytes]], ...] = (
    ("torch.onnx (TorchScript-based)", _legacy),
    ("torch.onnx (dynamo)", _dynamo),
)


def _with_metadata(data: bytes, metadata: Mapping[str, str]) -> bytes:
    if not metadata:
        return data
    import onnx

    proto: Any = onnx.load_from_string(data)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(proto.SerializeToString())
