"""Generic operations on `ImageDataset`s that several stages share: join, subset, fingerprint."""

from __future__ import annotations

from typing import Any

import torch

from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError
from repair_core.rng import seeded_permutation


def concat_datasets(first: ImageDataset, *others: ImageDataset) -> ImageDataset:
    """Join datasets row-wise, in order (e.g. D_train ∪ C for CF-DARTSE retraining).

    All parts must share class names (same order, so labels mean the same thing), image shape
    and device. Duplicates are kept: a union of a training set and selected failures is a
    concatenation, the failures are not in the training set.
    """
    parts = (first, *others)
    for position, part in enumerate(parts[1:], start=1):
        if part.class_names != first.class_names:
            raise RepairInputError(
                f"concat_datasets: part {position} has classes {list(part.class_names)}, "
                f"part 0 has {list(first.class_names)}"
            )
        if part.image_shape != first.image_shape:
            raise RepairInputError(
                f"concat_datasets: part {position} has images {part.image_shape}, "
                f"part 0 has {first.image_shape}"
            )
        if part.images.device != first.images.device:
            raise RepairInputError(
                f"concat_datasets: part {position} is on {part.images.device}, "
                f"part 0 on {first.images.device}"
            )
    if len(parts) == 1:
        return first
    return ImageDataset(
        torch.cat([part.images for part in parts]),
        torch.cat([part.labels for part in parts]),
        first.class_names,
    )


def seeded_subset(dataset: ImageDataset, limit: int | None, seed: int) -> ImageDataset:
    """At most `limit` rows drawn with `seed` (None or a larger limit: the whole set).

    The rows keep their original order; the draw is on the CPU, so it is the same subset on
    every device.
    """
    if limit is None or len(dataset) <= limit:
        return dataset
    index = seeded_permutation(len(dataset), seed)[:limit].sort().values
    return dataset.subset(index.to(dataset.images.device))


def data_fingerprint(dataset: ImageDataset) -> dict[str, Any]:
    """Cheap identity of a dataset: catches a wrong split on resume, not a forged one.

    JSON-native. The sums are a device reduction and one host sync.
    """
    return {
        "num_images": len(dataset),
        "image_shape": list(dataset.image_shape),
        "class_names": list(dataset.class_names),
        "pixel_sum": int(dataset.images.sum(dtype=torch.int64)),
        "label_sum": int(dataset.labels.sum()),
    }
