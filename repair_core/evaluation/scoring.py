"""Stage 4: top-1 accuracy of the original and repaired models on clean, failure and corrupted
test sets, gathered into one `EvaluationReport`.

Every corrupted set is generated once, on the evaluation device, and scored by all models
before the next one is made, so memory holds one corrupted copy at a time. Scores are
percentages, the report's unit, computed from each set's correct count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from repair_core.corruptions import CORRUPTION_NAMES, SEVERITIES, corrupt_in_chunks
from repair_core.corruptions.registry import check_seed, check_severity, get_corruption
from repair_core.datasets.ops import seeded_subset
from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.evaluation.accuracy import count_correct, device_of
from repair_core.evaluation.report import EvaluationReport, ModelScores, percent
from repair_core.progress import CancelToken, Progress, ProgressCallback, ignore_progress


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
    target = device_of(next(iter(models.values())), device)
    # Sets live on the evaluation device, so corrupted copies are made where they are scored.
    test = seeded_subset(test, max_images, seed).to(target)
    failures = None
    if held_out_failures is not None and len(held_out_failures) > 0:
        failures = seeded_subset(held_out_failures, max_images, seed).to(target)

    total = 1 + (failures is not None) + len(corruptions) * len(severities)
    step = 0
    seconds: dict[str, float] = {}

    def score(images: Tensor, labels: Tensor, what: str) -> dict[str, float]:
        nonlocal step
        if cancel is not None:
            cancel.check()
        scores = {
            name: percent(
                count_correct(model, images, labels, batch_size=batch_size, device=target),
                int(images.shape[0]),
            )
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
