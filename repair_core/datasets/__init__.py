"""Image datasets as uint8 tensors: the in-memory types and their safe readers/writers."""

from repair_core.datasets.types import DatasetSplits, ImageDataset

__all__ = ["DatasetSplits", "ImageDataset"]
