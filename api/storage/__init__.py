"""The artifact store: one interface (`ArtifactStore`, whose base is the local folder),
two backends chosen by `artifacts.backend` (docs/storage.md)."""

from __future__ import annotations

from api.settings import ArtifactSettings
from api.storage.keys import job_folder_key
from api.storage.local import ArtifactStore
from api.storage.uploads import HEAD_BYTES, CappedHashingWriter, StoredUpload

__all__ = [
    "HEAD_BYTES",
    "ArtifactStore",
    "CappedHashingWriter",
    "StoredUpload",
    "job_folder_key",
    "open_store",
]


def open_store(settings: ArtifactSettings) -> ArtifactStore:
    """The store `settings` name: the local folder `root`, or an S3 bucket with `root` as
    this machine's scratch folder."""
    if settings.backend == "s3":
        from api.storage.s3 import S3ArtifactStore  # boto3 only where S3 is used

        return S3ArtifactStore(settings.root, settings.s3)
    return ArtifactStore(settings.root)
