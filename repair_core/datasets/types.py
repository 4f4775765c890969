"""The dataset value types every stage exchanges.

Images are uint8 tensors (N, C, H, W) with values 0..255; labels are int64 (N,).
Models take float input in [0, 1] (`images.float() / 255`) and normalise internally.
A failure set may hold `UNLABELED` images (reported failures without a label); the
pipeline labels or drops them before anything trains on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from repair_core.errors import RepairInputError

# The label of an image nobody labelled yet.
UNLABELED = -1


@dataclass(frozen=True)
class ImageDataset:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise RepairInputError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise RepairInputError(
                f"labels must be (N,) with N={self.images.shape[0]}, got {tuple(self.labels.shape)}"
            )
        if self.labels.numel() and (
            int(self.labels.min()) < UNLABELED or int(self.labels.max()) >= len(self.class_names)
        ):
            bad = ((self.labels < UNLABELED) | (self.labels >= len(self.class_names))).nonzero()
            first = [int(i) for i in bad[:20, 0]]
            raise RepairInputError(f"labels outside [0, {len(self.class_names)}) at rows {first}")

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

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.train.class_names

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.train.image_shape
