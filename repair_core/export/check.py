"""What an export is checked against: the PyTorch model's logits on a seeded probe batch.

An exported model is only published when its logits match PyTorch's within `TOLERANCE`
(fp32) at batch 1 and at the probe batch size, so a dynamic batch dimension is proven by
the check itself, not assumed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from repair_core.rng import seeded_generator

TOLERANCE = 1e-4  # largest |logit difference| an fp32 export may show against PyTorch
PROBE_BATCH = 5  # images in the probe batch; batch 1 is checked too
INPUT_NAME = "pixels"  # float32 N x C x H x W in [0, 1]; the graph normalises
OUTPUT_NAME = "logits"  # float32 N x classes


class ExportError(RuntimeError):
    """A model could not be exported, or its export does not compute the same logits."""


@dataclass(frozen=True)
class ExportCheck:
    format: str  # "onnx" | "torchscript"
    exporter: str  # which path produced the file, e.g. "torch.onnx (TorchScript-based)"
    max_abs_diff: float  # largest |logit difference| against PyTorch over the probe batches
    batch_sizes: tuple[int, ...]  # the probe batch sizes it was run at
    input_shape: tuple[int, int, int]  # C, H, W of one image
    tolerance: float = TOLERANCE

    def to_dict(self) -> dict[str, Any]:
        """JSON-native (lists, not tuples), as the ledger and the report store it."""
        return {
            **asdict(self),
            "batch_sizes": list(self.batch_sizes),
            "input_shape": list(self.input_shape),
            "input_name": INPUT_NAME,
            "output_name": OUTPUT_NAME,
        }


def probe_batch(
    input_shape: tuple[int, int, int], size: int = PROBE_BATCH, seed: int = 0
) -> torch.Tensor:
    """`size` uniform [0, 1) images, the same for a given seed on every machine."""
    images: torch.Tensor = torch.rand((size, *input_shape), generator=seeded_generator(seed))
    return images


def probe_batches(input_shape: tuple[int, int, int]) -> list[torch.Tensor]:
    """The batches every export is checked on: one image, then `PROBE_BATCH`."""
    return [probe_batch(input_shape, 1, seed=1), probe_batch(input_shape, PROBE_BATCH, seed=2)]


def reference_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits: torch.Tensor = model.eval()(images)
    return logits.detach().float().cpu()


def max_abs_diff(expected: torch.Tensor, got: torch.Tensor) -> float:
    if expected.shape != got.shape:
        raise ExportError(f"export gives logits of shape {tuple(got.shape)}, PyTorch "
                          f"{tuple(expected.shape)}")  # fmt: skip
    return float((expected.float() - got.float()).abs().max())


def require_match(what: str, diff: float, tolerance: float) -> None:
    """Raise `ExportError` unless `diff` is finite and within `tolerance`."""
    if not diff <= tolerance:  # also catches NaN
        raise ExportError(
            f"{what}: max abs logit difference {diff:.3g} against PyTorch exceeds {tolerance:g}"
        )
