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

from repair_core.datasets.arrays import (
    UNLABELED,
    ArrayDataset,
    ArraySplits,
    ImageArrays,
    SplitsOf,
)

__all__ = ["UNLABELED", "DatasetSplits", "ImageDataset"]


@dataclass(frozen=True)
class ImageDataset(ImageArrays):
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    class_names: tuple[str, ...]

    @classmethod
    def from_arrays(cls, arrays: ArrayDataset) -> ImageDataset:
        """The same arrays as tensors (shared memory, no copy)."""
        return cls(
            torch.from_numpy(arrays.images), torch.from_numpy(arrays.labels), arrays.class_names
        )

    @property
    def labelled(self) -> torch.Tensor:
        """bool (N,): which images have a label."""
        return self.labels != UNLABELED

    def subset(self, index: torch.Tensor) -> ImageDataset:
        return ImageDataset(self.images[index], self.labels[index], self.class_names)

    def to(self, device: torch.device) -> ImageDataset:
        return ImageDataset(self.images.to(device), self.labels.to(device), self.class_names)


@dataclass(frozen=True)
class DatasetSplits(SplitsOf):
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
