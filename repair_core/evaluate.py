"""Stage 4: top-1 accuracy of the original and repaired models on clean, failure and corrupted
test sets, gathered into one `EvaluationReport`.

Every corrupted set is generated once, on the evaluation device, and scored by all models
before the next one is made, so memory holds one corrupted copy at a time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from repair_core.corruptions import CORRUPTION_NAMES, SEVERITIES, corrupt_in_chunks
from repair_core.corruptions.registry import check_seed, check_severity, get_corruption
from repair_core.datasets.types import ImageDataset
from repair_core.device import resolve_device
from repair_core.errors import RepairInputError
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress
from repair_core.report import EvaluationReport, ModelScores


def _device_of(model: nn.Module, device: torch.device | str | None) -> torch.device:
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        return resolve_device(device)
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _logits(output: object) -> Tensor:
    # DARTS evaluation networks return (logits, auxiliary logits); plain classifiers a tensor.
    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, Tensor) or output.dim() != 2:
        raise RepairInputError("the model must return logits (N, classes) or a tuple led by them")
    return output


def accuracy(
    model: nn.Module,
    dataset_or_images: ImageDataset | Tensor,
    labels: Tensor | None = None,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> float:
    """Top-1 accuracy in percent of `model` on uint8 images (N, C, H, W) and int labels.

    `dataset_or_images` is an `ImageDataset`, or an image tensor with `labels` beside it.
    The model sees float input in [0, 1]; it runs in eval mode without gradients on `device`
    (default: where its parameters are; it is moved there) and gets its mode back afterwards.
    """
    if isinstance(dataset_or_images, ImageDataset):
        images, labels = dataset_or_images.images, dataset_or_images.labels
    elif labels is None:
        raise RepairInputError("labels are required when images are passed as a tensor")
    else:
        images = dataset_or_images
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
    if batch_size < 1:
        raise RepairInputError(f"batch_size must be >= 1, got {batch_size}")
    target = _device_of(model, device)
    model.to(target)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=target)
    try:
        with torch.no_grad():
            for start in range(0, int(images.shape[0]), batch_size):
                batch = images[start : start + batch_size].to(target, non_blocking=True)
                truth = labels[start : start + batch_size].to(target, non_blocking=True)
                predicted = _logits(model(batch.float() / 255)).argmax(dim=1)
                correct += (predicted == truth).sum()
    finally:
        model.train(was_training)
    return 100.0 * int(correct.item()) / int(images.shape[0])  # the only host sync


def _capped(dataset: ImageDataset, max_images: int | None, seed: int) -> ImageDataset:
    if max_images is None or len(dataset) <= max_images:
        return dataset
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(dataset), generator=generator)[:max_images].sort().values
    return dataset.subset(index.to(dataset.images.device))


def evaluate_models(
    models: Mapping[str, nn.Module],
    test: ImageDataset,
    held_out_failures: ImageDataset | None = None,
    *,
    corruption_name_of_failures: str | None = None,
    corruptions: Sequence[str] = CORRUPTION_NAMES,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    device: torch.device | str | None = None,
    batch_size: int = 256,
    max_images: int | None = None,
    chunk_size: int = 1000,
    on_progress: ProgressCallback = ignore_progress,
    cancel: CancelToken | None = None,
) -> EvaluationReport:
    """Score every model (e.g. {"original": phi0, "repaired": phi1}) on the clean test split,
    the held-out failures (D_fail minus C) and each corruption x severity of the test split.

    `max_images` caps each set at a seeded random subset of that size (the same subset for
    clean and every corruption). Corruptions are seeded by `seed` (see `corrupt_in_chunks`).
    """
    if not models:
        raise RepairInputError("evaluate_models needs at least one model")
    if isinstance(corruptions, str):
        raise RepairInputError(f"corruptions must be a sequence of names, got {corruptions!r}")
    corruptions = tuple(dict.fromkeys(corruptions))  # each set once, in the given order
    severities = tuple(dict.fromkeys(severities))
    for name in corruptions:
        get_corruption(name)
    for severity in severities:
        check_severity(severity)
    check_seed(seed)
    if max_images is not None and max_images < 1:
        raise RepairInputError(f"max_images must be >= 1 or None, got {max_images}")
    target = _device_of(next(iter(models.values())), device)
    # Sets live on the evaluation device, so corrupted copies are made where they are scored.
    test = _capped(test, max_images, seed).to(target)
    failures = None
    if held_out_failures is not None and len(held_out_failures) > 0:
        failures = _capped(held_out_failures, max_images, seed).to(target)

    total = 1 + (failures is not None) + len(corruptions) * len(severities)
    step = 0
    seconds: dict[str, float] = {}

    def score(images: Tensor, labels: Tensor, what: str) -> dict[str, float]:
        nonlocal step
        if cancel is not None:
            cancel.check()
        scores = {
            name: accuracy(model, images, labels, batch_size=batch_size, device=target)
            for name, model in models.items()
        }
        step += 1
        on_progress(
            Progress("evaluating", step, total, {f"{what}/{m}": a for m, a in scores.items()})
        )
        return scores

    clean = score(test.images, test.labels, "clean")
    failure_scores = None
    if failures is not None:
        failure_scores = score(failures.images, failures.labels, "failures")
    by_corruption: dict[str, dict[str, dict[int, float]]] = {m: {} for m in models}
    for name in corruptions:
        started = time.perf_counter()
        for severity in severities:
            if cancel is not None:
                cancel.check()
            corrupted = corrupt_in_chunks(
                test.images, name, severity, seed=seed, chunk_size=chunk_size
            )
            for model, acc in score(corrupted, test.labels, f"{name}/{severity}").items():
                by_corruption[model].setdefault(name, {})[severity] = acc
        seconds[name] = round(time.perf_counter() - started, 3)

    report_models = {
        m: ModelScores(
            clean=clean[m],
            held_out_failures=None if failure_scores is None else failure_scores[m],
            corruptions=by_corruption[m],
        )
        for m in models
    }
    info = {
        "test_images": len(test),
        "held_out_failures": 0 if failures is None else len(failures),
        "seed": seed,
        "max_images": max_images,
        "device": str(target),
        "seconds_per_corruption": seconds,
    }
    return EvaluationReport(report_models, corruption_name_of_failures, info)
