"""Entry points for uploads: read an untrusted dataset or failure batch, store it
in canonical form at a path the caller chose, and return a small summary.

These are what the API runs inside `api.sandbox.run_sandboxed`: big arrays go to
`dest`, only the summary crosses the process boundary. They work on numpy arrays from
start to end and never import torch: torch's import alone would cost each upload's
child about a second of CPU and some 500 MB of memory, taken from the API's machine
while uploads run (`tests/repair_core/datasets/ingest/test_no_torch.py` holds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repair_core.datasets.ingest.archive import detect_kind
from repair_core.datasets.ingest.failures import read_failure_batch
from repair_core.datasets.ingest.imagefolder import IngestResult, read_imagefolder
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.npz import (
    read_npz_array_splits,
    write_npz_images,
    write_npz_splits,
)
from repair_core.datasets.ingest.rejected import Rejected


@dataclass(frozen=True)
class DatasetSummary:
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W)
    counts: dict[str, int]  # images per split: "train", "test" and maybe "val"
    skipped: list[Rejected]


@dataclass(frozen=True)
class FailureBatchSummary:
    accepted: int
    unlabeled: int  # accepted images without a label (taken on trust)
    image_shape: tuple[int, int, int]
    rejected: list[Rejected]


def read_dataset(source: Path, limits: IngestLimits) -> IngestResult:
    """An npz file, or an ImageFolder archive or directory (see imagefolder.py)."""
    if source.is_file() and detect_kind(source) == "npz":
        return IngestResult(arrays=read_npz_array_splits(source, limits), skipped=[])
    return read_imagefolder(source, limits)


def ingest_dataset(source: Path, dest: Path, limits: IngestLimits) -> DatasetSummary:
    """Validate and decode `source`, write the canonical npz to `dest`."""
    result = read_dataset(source, limits)
    splits = result.arrays
    write_npz_splits(dest, splits)
    counts = {"train": len(splits.train), "test": len(splits.test)}
    if splits.val is not None:
        counts["val"] = len(splits.val)
    return DatasetSummary(splits.class_names, splits.image_shape, counts, result.skipped)


def ingest_failure_batch(
    source: Path,
    dest: Path,
    *,
    class_names: tuple[str, ...],
    image_shape: tuple[int, int, int],
    limits: IngestLimits,
) -> FailureBatchSummary:
    """Validate `source` against the model's classes and input shape; write `x`, `y` to `dest`."""
    result = read_failure_batch(
        source, class_names=class_names, image_shape=image_shape, limits=limits
    )
    write_npz_images(dest, result.arrays.images, result.arrays.labels)
    return FailureBatchSummary(len(result.arrays), result.unlabeled, image_shape, result.rejected)
