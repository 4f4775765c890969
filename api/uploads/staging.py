"""The one flow every upload service shares: validate the upload in the sandbox into a temp
file, publish that file under a new key, commit the row that points at it.

Used as a context manager, it owns the upload's temp file and whatever it staged: on the
way out the temp files are gone, and a published file whose row was not committed is
deleted, so a failure at any step leaves no row and no file.

With a `quota_bytes`, the owner's storage quota is checked twice: early (`check_quota`,
before the costly validation) and again in the committing transaction under the owner
lock, so concurrent uploads cannot overshoot it together.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy.orm import Session

from api.db.base import Base
from api.services.quotas import check_storage, lock_owner
from api.services.uploads import discard, run_validation
from api.settings import SandboxSettings
from api.storage import ArtifactStore
from api.uploads.multipart import ReceivedUpload


class UploadStaging:
    def __init__(
        self,
        upload: ReceivedUpload,
        store: ArtifactStore,
        *,
        suffix: str,
        quota_bytes: int | None = None,
    ) -> None:
        self.upload = upload
        self.store = store
        self.suffix = suffix  # of the validated file, e.g. ".npz"
        self.quota_bytes = quota_bytes
        self._out: Path | None = None
        self._key: str | None = None

    def __enter__(self) -> UploadStaging:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unpublish()
        discard(self._out, self.upload.stored.path)

    def check_quota(self, session: Session, owner_id: uuid.UUID) -> None:
        """413 `quota_exceeded` now if the upload cannot fit the owner's quota."""
        if self.quota_bytes is not None:
            check_storage(
                session, owner_id=owner_id, incoming=self.upload.stored.size,
                limit=self.quota_bytes,
            )  # fmt: skip

    def validate(
        self,
        session: Session,
        fn: Callable[..., dict[str, Any]],
        *args: Any,
        sandbox: SandboxSettings,
        what: str,
        extra_memory_bytes: int = 0,
    ) -> dict[str, Any]:
        """`fn(upload path, output path, *args)` in the sandboxed child; its summary."""
        session.commit()  # ends the read transaction: no connection held while the child works
        self._out = self.store.temp_path(self.suffix)
        return run_validation(
            fn,
            str(self.upload.stored.path),
            str(self._out),
            *args,
            sandbox=sandbox,
            what=what,
            extra_memory_bytes=extra_memory_bytes,
        )

    def publish(self, owner_id: uuid.UUID) -> str:
        """Move the validated file to a new key of `owner_id`'s; returns the key."""
        if self._out is None:
            raise RuntimeError("publish() before validate()")
        key = self.store.new_key(owner_id, self.suffix)
        self.store.publish(self._out, key)
        self._key = key
        return key

    def commit(self, session: Session, row: Base) -> None:
        """Add and commit the row; the published file belongs to it from then on."""
        if self.quota_bytes is not None:
            owner_id: uuid.UUID = getattr(row, "owner_id")  # noqa: B009 (every upload row has one)
            lock_owner(session, owner_id)
            try:
                self.check_quota(session, owner_id)
            except Exception:
                session.rollback()
                raise
        session.add(row)
        session.commit()
        self._key = None

    def unpublish(self) -> None:
        """Delete the published file whose row was not committed (if any)."""
        if self._key is not None:
            self.store.delete(self._key)
            self._key = None

    def upload_columns(self, *, owner_id: uuid.UUID, name: str, kind: str) -> dict[str, Any]:
        """The columns every upload row has (`api.db.models._Upload` and its owner)."""
        if self._key is None:
            raise RuntimeError("upload_columns() before publish()")
        stored = self.upload.stored
        return {
            "owner_id": owner_id,
            "name": name,
            "original_filename": self.upload.filename,
            "sha256": stored.sha256,
            "size_bytes": stored.size,
            "source_format": kind,
            "storage_key": self._key,
        }
