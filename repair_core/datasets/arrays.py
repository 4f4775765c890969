"""Datasets as numpy arrays: what upload ingestion builds and stores, without torch.

The sandboxed child that validates every dataset and failure-batch upload runs on these
(`repair_core.datasets.ingest`): importing torch there would cost about a second of CPU
and some 500 MB of memory per upload, on the machine that also answers the API. Stages
work on the torch types of `types`, whose `from_arrays` turn these into those without
copying (`torch.from_numpy`); this module imports neither torch nor `types`.

`check_image_arrays` holds the invariants of a dataset's arrays for both: numpy arrays
here, torch tensors in `ImageDataset`. The layout is the same: images uint8 (N, C, H, W)
with values 0..255, labels int64 (N,), `UNLABELED` for an image without a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from repair_core.errors import RepairInputError

# The label of an image nobody labelled yet.
UNLABELED = -1


def is_uint8(array: Any) -> bool:
    """Whether a numpy array or torch tensor holds uint8 values."""
    return str(array.dtype).removeprefix("torch.") == "uint8"


def check_image_arrays(images: Any, labels: Any, num_classes: int) -> None:
    """Images uint8 (N, C, H, W), labels (N,) each in [0, num_classes) or `UNLABELED`.

    `images` and `labels` are numpy arrays or torch tensors (the checks use only what
    both answer: dtype, ndim, shape, min/max, comparisons).
    """
    if not is_uint8(images) or images.ndim != 4:
        raise RepairInputError(
            f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise RepairInputError(
            f"labels must be (N,) with N={images.shape[0]}, got {tuple(labels.shape)}"
        )
    if labels.shape[0] and (int(labels.min()) < UNLABELED or int(labels.max()) >= num_classes):
        bad = (labels < UNLABELED) | (labels >= num_classes)
        if hasattr(bad, "cpu"):  # a torch tensor, maybe on a GPU
            bad = bad.cpu()
        first = [int(i) for i in np.flatnonzero(np.asarray(bad))[:20]]
        raise RepairInputError(f"labels outside [0, {num_classes}) at rows {first}")


class ImageArrays:
    """What a dataset of either kind derives from its arrays: the checks at construction,
    its length and its image shape (a mixin of `ArrayDataset` and `types.ImageDataset`)."""

    images: Any  # uint8 (N, C, H, W): numpy array or torch tensor
    labels: Any  # int64 (N,)
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        check_image_arrays(self.images, self.labels, len(self.class_names))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)


class SplitsOf:
    """Class names and image shape of splits, from the train split (a mixin of
    `ArraySplits` and `types.DatasetSplits`)."""

    train: ImageArrays

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape


@dataclass(frozen=True)
class ArrayDataset(ImageArrays):
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class ArraySplits(SplitsOf):
    train: ArrayDataset
    test: ArrayDataset
    val: ArrayDataset | None = None
