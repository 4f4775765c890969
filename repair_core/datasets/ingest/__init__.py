"""Reading hostile uploads into datasets: archives, images, ImageFolder trees, npz files,
failure batches, each under the caps of `IngestLimits`.

Nothing here trusts a header, a name or a size: see each module's notes. The entry points
(`entry`) read an upload, store it in canonical form and return a small summary; the API
runs them in its sandboxed child process.
"""

from repair_core.datasets.ingest.archive import ArchiveFile, detect_kind, iter_archive_files
from repair_core.datasets.ingest.entry import (
    DatasetSummary,
    FailureBatchSummary,
    ingest_dataset,
    ingest_failure_batch,
    read_dataset,
)
from repair_core.datasets.ingest.failures import FailureBatchResult, read_failure_batch
from repair_core.datasets.ingest.imagefolder import (
    IngestResult,
    read_cifar10_folder,
    read_imagefolder,
)
from repair_core.datasets.ingest.images import decode_image
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.npz import (
    read_npz_images,
    read_npz_splits,
    write_npz_images,
    write_npz_splits,
)
from repair_core.datasets.ingest.rejected import Rejected

__all__ = [
    "ArchiveFile",
    "DatasetSummary",
    "FailureBatchResult",
    "FailureBatchSummary",
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
