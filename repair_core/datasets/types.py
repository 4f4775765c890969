"""The dataset value types every stage exchanges.

Images are uint8 tensors (N, C, H, W) with values 0..255; labels are int64 (N,).
Models take float input in [0, 1] (`images.float() / 255`) and normalise internally.
A failure set may hold `UNLABELED` images (reported failures without a label); the
pipeline labels or drops them before anything trains on them.

Upload ingestion builds the numpy twins of these (`arrays`, no torch) and converts at
the boundary; both check their arrays with the same `check_image_arrays`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repair_core.datasets.arrays import UNLABELED, ArrayDataset, ArraySplits, check_image_arrays

__all__ = ["UNLABELED", "DatasetSplits", "ImageDataset"]


@dataclass(frozen=True)
class ImageDataset:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        check_image_arrays(self.images, self.labels, len(self.class_names))

    @classmethod
    def from_arrays(cls, arrays: ArrayDataset) -> ImageDataset:
        """The same arrays as tensors (shared memory, no copy)."""
        return cls(
            torch.from_numpy(arrays.images), torch.from_numpy(arrays.labels), arrays.class_names
        )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def labelled(self) -> torch.Tensor:
        """bool (N,): which images have a label."""
        return self.labels != UNLABELED

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def subset(self, index: torch.Tensor) -> ImageDataset:
        return ImageDataset(self.images[index], self.labels[index], self.class_names)

    def to(self, device: torch.device) -> ImageDataset:
        return ImageDataset(self.images.to(device), self.labels.to(device), self.class_names)


@dataclass(frozen=True)
class DatasetSplits:
    train: ImageDataset
    test: ImageDataset
    val: ImageDataset | None = None

    @classmethod
    def from_arrays(cls, arrays: ArraySplits) -> DatasetSplits:
        """The same arrays as tensors (shared memory, no copy)."""
        val = None if arrays.val is None else ImageDataset.from_arrays(arrays.val)
        return cls(
            train=ImageDataset.from_arrays(arrays.train),
            test=ImageDataset.from_arrays(arrays.test),
            val=val,
        )

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape
