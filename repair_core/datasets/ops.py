"""Generic operations on `ImageDataset`s that several stages share."""

from __future__ import annotations

import torch

from repair_core.datasets.types import ImageDataset
from repair_core.errors import RepairInputError


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
