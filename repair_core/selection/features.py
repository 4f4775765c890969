"""Penultimate-layer features of a classifier, the space the core-set distances live in.

Any object with `features(x) -> (N, D)` works (the DARTS `EvalNetwork` does): x is float in
[0, 1] with shape (N, C, H, W) and the model normalises internally, as every model here.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress


@runtime_checkable
class FeatureModel(Protocol):
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float in [0, 1] -> (N, D) features (the classifier's input)."""
        ...


def model_device(model: FeatureModel) -> torch.device | None:
    """The device of an nn.Module's first parameter or buffer; None for other models."""
    if not isinstance(model, nn.Module):
        return None
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


def extract_features(
    model: FeatureModel,
    images_uint8: torch.Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> torch.Tensor:
    """Features (N, D) float32 on `device` for uint8 images (N, C, H, W), in batches.

    `device` defaults to the model's device (CPU for a model without parameters); the
    model is not moved, it must already live there. Each batch is copied to the device as
    uint8 (4x less transfer than float) and converted to float / 255 there. An nn.Module
    runs in eval mode under no_grad and gets its previous train/eval mode back afterwards.
    """
    _check_images(images_uint8, batch_size)
    where = model_device(model)
    target = torch.device(device) if device is not None else (where or torch.device("cpu"))
    if where is not None and not _same_device(where, target):
        raise RepairInputError(
            f"the model is on {where} but features were requested on {target}: "
            f"move the model first (model.to({str(target)!r}))"
        )
    n = images_uint8.shape[0]
    batches = range(0, n, batch_size)
    was_training = model.training if isinstance(model, nn.Module) else False
    if isinstance(model, nn.Module):
        model.eval()
    out: torch.Tensor | None = None
    try:
        with torch.no_grad():
            for step, start in enumerate(batches, start=1):
                if cancel is not None:
                    cancel.check()
                batch = images_uint8[start : start + batch_size].to(target, non_blocking=True)
                feats = model.features(batch.float().div_(255)).flatten(1)
                if feats.shape[0] != batch.shape[0]:
                    raise RepairInputError(
                        f"model.features returned {feats.shape[0]} rows for a batch of "
                        f"{batch.shape[0]} images"
                    )
                if out is None:
                    out = torch.empty((n, feats.shape[1]), dtype=torch.float32, device=target)
                out[start : start + batch.shape[0]] = feats
                on_progress(Progress("extracting_features", step, len(batches)))
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    assert out is not None  # n > 0 was checked, so at least one batch ran
    return out


def _check_images(images: torch.Tensor, batch_size: int) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        got = (
            f"{images.dtype} {tuple(images.shape)}"
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise RepairInputError(f"images must be a uint8 tensor (N, C, H, W), got {got}")
    if images.shape[0] == 0:
        raise RepairInputError("no images to extract features from (N = 0)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise RepairInputError(f"batch_size must be a positive integer, got {batch_size!r}")


def _same_device(a: torch.device, b: torch.device) -> bool:
    # "cuda" and "cuda:0" name the same device when 0 is the current one.
    if a.type != b.type:
        return False
    if a.index is None or b.index is None:
        current = torch.cuda.current_device() if a.type == "cuda" else 0
        return (a.index if a.index is not None else current) == (
            b.index if b.index is not None else current
        )
    return a.index == b.index
