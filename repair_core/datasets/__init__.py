"""Image datasets as uint8 tensors: the in-memory types every stage exchanges.

`types` (ImageDataset, DatasetSplits), `ops` (join, seeded subset, fingerprint) and
`digits` (a small real dataset for tests and the demo) are all a stage needs. Reading
untrusted uploads (archives, images, ImageFolder trees, npz files, failure batches) lives
in the `ingest` subpackage, which this package does not import: importing `ImageDataset`
loads neither PIL nor the archive readers.

The names below load on first use (PEP 562), not when the package is imported: `ingest`
works on numpy arrays (`arrays`) and runs in the upload sandbox, and importing it runs
this file, which must not pull in torch there (a second of CPU and some 500 MB per
upload child).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repair_core.datasets.ops import concat_datasets, data_fingerprint, seeded_subset
    from repair_core.datasets.types import DatasetSplits, ImageDataset

__all__ = ["DatasetSplits", "ImageDataset", "concat_datasets", "data_fingerprint", "seeded_subset"]

_HOMES = {
    "DatasetSplits": "repair_core.datasets.types",
    "ImageDataset": "repair_core.datasets.types",
    "concat_datasets": "repair_core.datasets.ops",
    "data_fingerprint": "repair_core.datasets.ops",
    "seeded_subset": "repair_core.datasets.ops",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
