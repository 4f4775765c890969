"""Top-1 predictions and accuracy: the one implementation every stage scores with.

Accuracy is a fraction in [0, 1] everywhere in `repair_core` (training history, search and
retraining progress, `accuracy`); only the evaluation report states percentages, the
paper's unit, and converts from the correct count where it is built (`report.percent`).

Images are uint8 (N, C, H, W); models see float input in [0, 1] and run in eval mode
without gradients, and get their mode back afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from repair_core.datasets.types import ImageDataset
from repair_core.device import resolve_device
from repair_core.errors import RepairInputError
from repair_core.precision import autocast
from repair_core.progress import CancelToken


def device_of(model: nn.Module, device: torch.device | str | None) -> torch.device:
    """`device` as a device, or where the model's parameters are (CPU without any)."""
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        return resolve_device(device)
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _logits(output: object) -> Tensor:
    # DARTS evaluation networks return (logits, auxiliary logits); plain classifiers a tensor.
    if isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, Tensor) or output.dim() != 2:
        raise RepairInputError("the model must return logits (N, classes) or a tuple led by them")
    return output


def predict(
    model: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    bf16: bool = False,
    channels_last: bool = False,
    cancel: CancelToken | None = None,
) -> Tensor:
    """The top-1 class of every image: int64 (N,) on the evaluation device, no host sync.

    `device` defaults to where the model's parameters are (the model is moved there);
    `bf16` runs the forward under bfloat16 autocast, `channels_last` feeds NHWC batches.
    """
    return _per_image(
        model, images, lambda logits: logits.argmax(dim=1), torch.int64,
        batch_size=batch_size, device=device, bf16=bf16, channels_last=channels_last,
        cancel=cancel,
    )  # fmt: skip


def predict_with_confidence(
    model: nn.Module,
    images: Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    cancel: CancelToken | None = None,
) -> tuple[Tensor, Tensor]:
    """The top-1 class of every image and its softmax probability (float32), on the
    evaluation device: the hint shown beside an image an owner is asked to label."""
    both = _per_image(
        model, images,
        _class_and_probability, torch.float32,
        batch_size=batch_size, device=device, cancel=cancel,
    )  # fmt: skip
    return both[:, 0].long(), both[:, 1]


def _class_and_probability(logits: Tensor) -> Tensor:
    probability, top = logits.float().softmax(dim=1).max(dim=1)
    return torch.stack([top.float(), probability], dim=1)  # class indices are exact in float32


def _per_image(
    model: nn.Module,
    images: Tensor,
    of_logits: Callable[[Tensor], Tensor],
    dtype: torch.dtype,
    *,
    batch_size: int,
    device: torch.device | str | None,
    bf16: bool = False,
    channels_last: bool = False,
    cancel: CancelToken | None,
) -> Tensor:
    """`of_logits` of every batch of `images` (uint8), in eval mode, concatenated."""
    if batch_size < 1:
        raise RepairInputError(f"batch_size must be >= 1, got {batch_size}")
    target = device_of(model, device)
    model.to(target)
    was_training = model.training
    model.eval()
    outputs: list[Tensor] = []
    try:
        with torch.no_grad():
            for start in range(0, int(images.shape[0]), batch_size):
                if cancel is not None:
                    cancel.check()
                batch = images[start : start + batch_size].to(target, non_blocking=True)
                batch = batch.float().div_(255.0)
                if channels_last:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                with autocast(target, bf16):
                    outputs.append(of_logits(_logits(model(batch))))
    finally:
        model.train(was_training)
    if not outputs:
        return torch.empty(0, dtype=dtype, device=target)
    return torch.cat(outputs)


def count_correct(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    bf16: bool = False,
    channels_last: bool = False,
) -> int:
    """How many images `model` classifies as their label (see `predict` for the options)."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise RepairInputError(
            f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise RepairInputError(
            f"labels must be (N,) with N={images.shape[0]}, got {tuple(labels.shape)}"
        )
    if images.shape[0] == 0:
        raise RepairInputError("cannot measure accuracy on an empty set")
    predicted = predict(
        model, images, batch_size=batch_size, device=device, bf16=bf16, channels_last=channels_last
    )
    return int((predicted == labels.to(predicted.device)).sum())  # the only host sync


def accuracy(
    model: nn.Module,
    dataset_or_images: ImageDataset | Tensor,
    labels: Tensor | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    bf16: bool = False,
    channels_last: bool = False,
) -> float:
    """Top-1 accuracy of `model` as a fraction in [0, 1].

    `dataset_or_images` is an `ImageDataset`, or a uint8 image tensor with `labels` beside it.
    """
    if isinstance(dataset_or_images, ImageDataset):
        images, labels = dataset_or_images.images, dataset_or_images.labels
    elif labels is None:
        raise RepairInputError("labels are required when images are passed as a tensor")
    else:
        images = dataset_or_images
    correct = count_correct(
        model, images, labels,
        batch_size=batch_size, device=device, bf16=bf16, channels_last=channels_last,
    )  # fmt: skip
    return correct / int(images.shape[0])
