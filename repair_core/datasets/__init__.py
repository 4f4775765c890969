"""Image datasets as uint8 tensors: the in-memory types every stage exchanges.

`types` (ImageDataset, DatasetSplits), `ops` (join, seeded subset, fingerprint) and
`digits` (a small real dataset for tests and the demo) are all a stage needs. Reading
untrusted uploads (archives, images, ImageFolder trees, npz files, failure batches) lives
in the `ingest` subpackage, which this package does not import: importing `ImageDataset`
loads neither PIL nor the archive readers.
"""

from repair_core.datasets.ops import concat_datasets, data_fingerprint, seeded_subset
from repair_core.datasets.types import DatasetSplits, ImageDataset

__all__ = ["DatasetSplits", "ImageDataset", "concat_datasets", "data_fingerprint", "seeded_subset"]
