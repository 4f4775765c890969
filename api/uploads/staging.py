"""The one flow every upload service shares: validate the upload in the sandbox into a temp
file, publish that file under a new key, commit the row that points at it.

Used as a context manager, it owns the upload's temp file and whatever it staged: on the
way out the temp files are gone, and a published file whose row was not committed is
deleted, so a failure at any step leaves no row and no file.

Untrusted bytes are only ever parsed by `api.uploads.validation` functions running in the
resource-limited child of `api.uploads.sandbox`; this module never imports torch.

The owner's storage quota is checked three times: while the body streams (the
upload's reservation, `api.uploads.reservation`), before the costly validation
(`check_quota`, which also shrinks the reservation to the received size and renews it
for the validation) and in the committing transaction under the owner lock, which drops
the reservation as the row takes over its bytes; concurrent uploads, in any API
process, cannot overshoot it together.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.db.base import Base
from api.errors import ConflictError, InsufficientStorageError, InvalidInputError
from api.faults import reach
from api.services.quotas import check_storage, lock_owner, release_storage, reserve_storage
from api.settings import SandboxSettings, Settings, UploadLimits
from api.storage import ArtifactStore
from api.uploads.filekinds import check_upload
from api.uploads.forms import UploadForm
from api.uploads.multipart import ReceivedUpload

# The stable `code` of each repair_core input error, by class name (the child re-raises
# them; matching by name keeps this module free of imports that may pull in torch).
ERROR_CODES = {
    "UnsafeCheckpointError": "checkpoint_unsafe",
    "ArchiveUnsafeError": "archive_unsafe",
    "LimitExceededError": "limit_exceeded",
    "ImageDecodeError": "image_invalid",
}


# The file names the child sees in its work folder: what its messages can echo, so they
# say nothing of the server's paths or temp names.
CHILD_INPUT = "upload"
CHILD_OUTPUT = "validated"


def take_output(produced: Path, dest: Path, *, what: str) -> None:
    """Move the child's output to `dest`, ours: it must be one plain file (a child that
    lost control could leave a link to something else there)."""
    try:
        info = os.lstat(produced)
    except FileNotFoundError:
        raise InvalidInputError(
            f"{what}: validation produced no output", code="validation_failed"
        ) from None
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        raise InvalidInputError(
            f"{what}: validation produced something other than a plain file",
            code="validation_failed",
        )
    if (info.st_uid, info.st_gid) != (os.geteuid(), os.getegid()):
        os.chown(produced, os.geteuid(), os.getegid(), follow_symlinks=False)
    os.chmod(produced, 0o644)  # a regular file (checked above), no link to follow
    os.replace(produced, dest)


def ingest_limits(limits: UploadLimits) -> dict[str, int]:
    """The archive/image caps handed to the child as plain data: the keyword arguments
    of `repair_core.datasets.ingest.limits.IngestLimits` (the rest keep their defaults)."""
    return {
        "max_members": limits.archive_members,
        "max_member_bytes": limits.member_bytes,
        "max_total_bytes": limits.unpacked_bytes,
        "max_image_pixels": limits.image_pixels,
    }


class UploadStaging:
    def __init__(
        self,
        upload: ReceivedUpload,
        store: ArtifactStore,
        form: UploadForm,
        *,
        suffix: str,
        settings: Settings,
    ) -> None:
        self.upload = upload
        self.store = store
        self.form = form
        self.suffix = suffix  # of the validated file, e.g. ".npz"
        self.quotas = settings.quotas
        self.fault_point = settings.fault_point
        self._out: Path | None = None
        self._workdir: Path | None = None
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
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)  # never follows the child's links
        for path in (self._out, self.upload.stored.path):
            if path is not None:
                with suppress(OSError):
                    path.unlink(missing_ok=True)

    def check_kind(self) -> str:
        """The upload's kind: its name's, confirmed by its bytes; 422 on a wrong `sha256`."""
        return check_upload(
            self.upload,
            kinds=self.form.kinds,
            what=self.form.what,
            declared_sha256=self.upload.fields.get("sha256"),
        )

    def check_quota(self, session: Session, owner_id: uuid.UUID) -> None:
        """413 `quota_exceeded` now if the upload cannot fit the owner's quota; renews the
        upload's reservation (at its received size) for the validation that follows."""
        reservation = self.upload.reservation_id
        if reservation is not None:
            reserve_storage(
                session, owner_id=owner_id, reservation_id=reservation,
                total_bytes=self.upload.stored.size, limit=self.quotas.storage_bytes,
                ttl_seconds=self.quotas.reservation_seconds,
            )  # fmt: skip
            return
        check_storage(
            session, owner_id=owner_id, incoming=self.upload.stored.size,
            limit=self.quotas.storage_bytes,
        )  # fmt: skip

    def validate(
        self,
        session: Session,
        fn: Callable[..., dict[str, Any]],
        *args: Any,
        sandbox: SandboxSettings,
        extra_memory_bytes: int = 0,
    ) -> dict[str, Any]:
        """`fn(input name, output name, *args)` in the sandboxed child, run in a work
        folder of its own that holds the upload; its summary. Its failures are 422
        problems (507 when the disk is full)."""
        from api.uploads.sandbox import SandboxError, run_sandboxed
        from repair_core.errors import RepairInputError

        what = self.form.what
        session.commit()  # ends the read transaction: no connection held while the child works
        self._out = self.store.temp_path(self.suffix)
        self._workdir = self._make_workdir()
        memory_bytes = sandbox.memory_bytes + extra_memory_bytes
        try:
            summary: dict[str, Any] = run_sandboxed(
                fn,
                CHILD_INPUT,
                CHILD_OUTPUT + self.suffix,
                *args,
                memory_bytes=memory_bytes,
                cpu_seconds=sandbox.cpu_seconds,
                timeout_seconds=sandbox.timeout_seconds,
                workdir=self._workdir,
                python=sandbox.python,
            )
        except RepairInputError as exc:
            raise _input_problem(exc, what) from exc
        except SandboxError as exc:
            if exc.reason == "no_space":
                raise InsufficientStorageError(
                    f"{what}: the server ran out of disk space while validating it; nothing "
                    "was stored, retry later",
                ) from exc
            raise InvalidInputError(
                f"{what} could not be validated within the limits (memory "
                f"{memory_bytes} bytes, cpu {sandbox.cpu_seconds} s, "
                f"wall {sandbox.timeout_seconds:g} s): {exc}",
                code="validation_failed",
            ) from exc
        take_output(self._workdir / (CHILD_OUTPUT + self.suffix), self._out, what=what)
        return summary

    def _make_workdir(self) -> Path:
        """A folder holding the upload (a hard link: no copy) for the child to run in.

        The link shares the upload's inode, owned by us and only readable by others: the
        child (maybe another user) reads it but cannot change the bytes we hashed."""
        workdir = self.store.temp_path(".sandbox")
        workdir.mkdir(mode=0o700)
        os.link(self.upload.stored.path, workdir / CHILD_INPUT)
        os.chmod(workdir / CHILD_INPUT, 0o644)
        return workdir

    def publish(self, owner_id: uuid.UUID) -> str:
        """Move the validated file to a new key of `owner_id`'s; returns the key."""
        if self._out is None:
            raise RuntimeError("publish() before validate()")
        key = self.store.new_key(owner_id, self.suffix)
        self.store.publish(self._out, key)
        self._key = key
        reach("upload_published", self.fault_point)
        return key

    def commit(
        self,
        session: Session,
        row: Base,
        *,
        parent: tuple[type[Base], uuid.UUID, str] | None = None,
    ) -> None:
        """Add and commit the row; the published file belongs to it from then on. The
        upload's reservation goes in the same transaction: its bytes now count as the row's.

        `parent` (model, id, what): the row the new one belongs to, checked again under the
        owner lock, since a delete may have removed it while the upload was validated."""
        owner_id: uuid.UUID = getattr(row, "owner_id")  # noqa: B009 (every upload row has one)
        lock_owner(session, owner_id)
        reservation = self.upload.reservation_id
        try:
            if parent is not None:
                model, parent_id, what = parent
                table = model.__table__
                if session.scalar(sa.select(table.c.id).where(table.c.id == parent_id)) is None:
                    raise ConflictError(
                        f"{what} {parent_id} was deleted while this upload was being "
                        "validated; nothing was stored",
                        code="parent_deleted",
                    )
            check_storage(
                session, owner_id=owner_id, incoming=self.upload.stored.size,
                limit=self.quotas.storage_bytes, exclude_reservation=reservation,
            )  # fmt: skip
        except Exception:
            session.rollback()
            raise
        if reservation is not None:
            release_storage(session, reservation)
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


def _input_problem(exc: Exception, what: str) -> InvalidInputError:
    """The 422 of an input error raised in the child: its stable code, the limit it hit."""
    code = getattr(exc, "code", None) or next(
        (ERROR_CODES[c.__name__] for c in type(exc).__mro__ if c.__name__ in ERROR_CODES),
        "invalid_input",
    )
    details = []
    if getattr(exc, "limit", ""):
        details.append({"limit": exc.limit, "value": getattr(exc, "value", None)})  # type: ignore[attr-defined]
    return InvalidInputError(f"{what}: {exc}", code=str(code), errors=details)
