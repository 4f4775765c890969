"""TorchScript export of a classifier (`torch.jit.trace`), checked against PyTorch.

Same input and output as the ONNX graph: float32 N x C x H x W in [0, 1], normalisation
inside, any batch size. Loaded with `torch.jit.load` alone, without this project.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path

import torch

from repair_core.atomic import write_bytes_atomic
from repair_core.export.check import (
    TOLERANCE,
    ExportCheck,
    ExportError,
    max_abs_diff,
    probe_batches,
    reference_logits,
    require_match,
)

EXPORTER = "torch.jit.trace"


def export_torchscript(
    model: torch.nn.Module,
    path: Path,
    *,
    input_shape: tuple[int, int, int],
    tolerance: float = TOLERANCE,
) -> ExportCheck:
    """Trace `model` (a copy, on the CPU, in eval mode) and write it to `path`, atomically,
    once the saved-and-reloaded module matches PyTorch on the probe batches."""
    model = copy.deepcopy(model).cpu().eval()
    with warnings.catch_warnings():
        # torch >= 2.10 marks torch.jit deprecated; it is still what TorchScript users load.
        warnings.simplefilter("ignore")
        try:
            with torch.no_grad():
                traced = torch.jit.trace(model, (torch.zeros(2, *input_shape),))  # type: ignore[no-untyped-call]
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer)
            data = buffer.getvalue()
            # Our own bytes, just written: reloading them is what a user's deployment does.
            reloaded = torch.jit.load(io.BytesIO(data), map_location="cpu")  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ExportError(f"TorchScript export failed: {type(exc).__name__}: {exc}") from exc
        diff = 0.0
        batches = probe_batches(input_shape)
        for images in batches:
            with torch.no_grad():
                got = reloaded(images)
            diff = max(diff, max_abs_diff(reference_logits(model, images), got))
    require_match("TorchScript", diff, tolerance)
    write_bytes_atomic(path, data)
    return ExportCheck("torchscript", EXPORTER, diff, tuple(len(b) for b in batches), input_shape,
                       tolerance)  # fmt: skip
