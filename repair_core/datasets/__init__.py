"""Image datasets as uint8 tensors: the in-memory types and their safe readers/writers."""

from repair_core.datasets.archive import ArchiveFile, detect_kind, iter_archive_files
from repair_core.datasets.failures import FailureBatchResult, read_failure_batch
from repair_core.datasets.imagefolder import IngestResult, read_cifar10_folder, read_imagefolder
from repair_core.datasets.images import decode_image
from repair_core.datasets.ingest import (
    DatasetSummary,
    FailureBatchSummary,
    ingest_dataset,
    ingest_failure_batch,
    read_dataset,
)
from repair_core.datasets.limits import IngestLimits
from repair_core.datasets.npz import (
    read_npz_images,
    read_npz_splits,
    write_npz_images,
    write_npz_splits,
)
from repair_core.datasets.rejected import Rejected
from repair_core.datasets.types import DatasetSplits, ImageDataset

__all__ = [
    "ArchiveFile",
    "DatasetSplits",
    "DatasetSummary",
    "FailureBatchResult",
    "FailureBatchSummary",
    "ImageDataset",
    "IngestLimits",
    "IngestResult",
    "Rejected",
    "decode_image",
    "detect_kind",
    "ingest_dataset",
    "ingest_failure_batch",
    "iter_archive_files",
    "read_cifar10_folder",
    "read_dataset",
    "read_failure_batch",
    "read_imagefolder",
    "read_npz_images",
    "read_npz_splits",
    "write_npz_images",
    "write_npz_splits",
]
