"""The artifact store: files under `root/<owner_id>/<uuid>`, published atomically.

Writers fill a temp file under `root/.tmp` (same file system, so `os.replace` is atomic),
fsync it, and only then move it to its key; rows are committed after the move. A crash
in between leaves a file without a row, which `sweep_temp` and `sweep_orphans` (the
upkeep sweep, `api.services.upkeep`) remove; it never leaves a row pointing at a
half-written file.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Collection
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from api.errors import PayloadTooLargeError
from repair_core.atomic import fsync_folder, fsync_path
from repair_core.choices import MODEL_FORMAT_SUFFIXES

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Bytes of the upload kept in memory for magic-byte sniffing.
HEAD_BYTES = 512


def job_folder_key(owner_id: uuid.UUID, job_id: uuid.UUID) -> str:
    """The key of a job's folder: its work directory (`work/`) and journal."""
    return f"{owner_id}/jobs/{job_id}"


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.tmp_dir = self.root / ".tmp"

    def new_key(self, owner_id: uuid.UUID, suffix: str = "") -> str:
        return f"{owner_id}/{uuid.uuid4().hex}{suffix}"

    @staticmethod
    def figure_key(owner_id: uuid.UUID, job_id: uuid.UUID, file_name: str) -> str:
        """Where a job's report figure lives: beside its work directory, so it goes with
        the job's folder and the orphan sweep (which skips job folders) leaves it alone."""
        return f"{owner_id}/jobs/{job_id}/figures/{file_name}"

    @staticmethod
    def variant_model_key(
        owner_id: uuid.UUID, job_id: uuid.UUID, variant: str, model_format: str = "safetensors"
    ) -> str:
        """Where a compared variant's model lives in `model_format` (not the primary's: that
        is the job's `result_model_key` and export columns): in the job's folder like its
        figures, so deletes, the quota and the orphan sweep see it without a column of its
        own."""
        suffix = MODEL_FORMAT_SUFFIXES[model_format]
        return f"{owner_id}/jobs/{job_id}/variants/{variant}{suffix}"

    def path(self, key: str) -> Path:
        """The file behind `key`; rejects anything that could leave the store."""
        parts = key.split("/")
        if not parts or not all(_SEGMENT_RE.match(p) and ".." not in p for p in parts):
            raise ValueError(f"invalid storage key {key!r}")
        return self.root.joinpath(*parts)

    def temp_path(self, suffix: str = "") -> Path:
        # Private: sandbox children (another user) reach only their own work folder in it.
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.tmp_dir / f"{uuid.uuid4().hex}{suffix}"

    def publish(self, tmp: Path, key: str) -> Path:
        """Move a finished temp file to `key`, durably."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fsync_path(tmp)
        os.replace(tmp, target)
        fsync_folder(target.parent)
        return target

    def write_bytes(self, key: str, data: bytes) -> Path:
        tmp = self.temp_path()
        try:
            tmp.write_bytes(data)
            return self.publish(tmp, key)
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_tree(self, key: str) -> None:
        """Remove the folder behind `key` and everything in it (a job's folder)."""
        path = self.path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def sweep_temp(self, older_than_seconds: float = 3600.0) -> int:
        """Remove temp files and folders left by crashed or abandoned uploads and sandbox
        runs, untouched for `older_than_seconds`; returns how many."""
        if not self.tmp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_seconds
        removed = 0
        for entry in self.tmp_dir.iterdir():
            try:
                if entry.is_symlink() or entry.is_file():
                    if entry.lstat().st_mtime < cutoff:
                        entry.unlink()
                        removed += 1
                elif entry.is_dir() and _newest_mtime(entry) < cutoff:
                    # A scratch folder (a sandbox's): only once nothing in it is recent.
                    shutil.rmtree(entry)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def published_files(self) -> list[tuple[str, float]]:
        """(key, mtime) of every published artifact: the files `<owner>/<name>` that
        `new_key` names. Job work directories (`<owner>/jobs/...`) are not listed."""
        if not self.root.is_dir():
            return []
        found: list[tuple[str, float]] = []
        for owner_dir in self.root.iterdir():
            if owner_dir.name == self.tmp_dir.name or not owner_dir.is_dir():
                continue
            for entry in owner_dir.iterdir():
                try:
                    if entry.is_file() and not entry.is_symlink():
                        found.append((f"{owner_dir.name}/{entry.name}", entry.stat().st_mtime))
                except FileNotFoundError:
                    continue
        return found

    def job_folders(self) -> list[tuple[str, float]]:
        """(key, mtime) of every job folder `<owner>/jobs/<job id>`."""
        if not self.root.is_dir():
            return []
        found: list[tuple[str, float]] = []
        for jobs in self.root.glob("*/jobs"):
            if jobs.parent.name == self.tmp_dir.name or not jobs.is_dir():
                continue
            for entry in jobs.iterdir():
                try:
                    if entry.is_dir() and not entry.is_symlink():
                        key = f"{jobs.parent.name}/jobs/{entry.name}"
                        found.append((key, entry.stat().st_mtime))
                except FileNotFoundError:
                    continue
        return found

    def sweep_orphans(
        self, referenced: Callable[[], Collection[str]], older_than_seconds: float = 3600.0
    ) -> int:
        """Remove published files older than `older_than_seconds` whose key is not in
        `referenced()`; returns how many.

        The age margin covers a file published whose row is not committed yet; the files
        are listed before `referenced()` is read, so a row committed meanwhile still
        protects its file.
        """
        cutoff = time.time() - older_than_seconds
        candidates = [key for key, mtime in self.published_files() if mtime < cutoff]
        if not candidates:
            return 0
        keep = set(referenced())
        removed = 0
        for key in candidates:
            if key not in keep:
                try:
                    self.path(key).unlink()
                    removed += 1
                except (FileNotFoundError, ValueError):
                    continue
        return removed


def _newest_mtime(folder: Path) -> float:
    newest = folder.lstat().st_mtime
    for parent, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            try:
                newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
            except FileNotFoundError:
                continue
    return newest


@dataclass(frozen=True)
class StoredUpload:
    path: Path
    sha256: str
    size: int
    head: bytes  # the first HEAD_BYTES bytes, for magic-byte checks


class CappedHashingWriter:
    """Writes a stream to a temp file, hashing it and enforcing a byte cap as it goes.

    The cap trips on the first chunk that passes it, so an oversized body is never
    stored whole. `discard()` removes the file; callers call it on every failure path.
    """

    def __init__(self, path: Path, *, max_bytes: int, what: str) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.what = what
        self.size = 0
        self._hash = hashlib.sha256()
        self._head = bytearray()
        self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 (closed in finish/discard)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_bytes:
            raise PayloadTooLargeError(
                f"{self.what} is larger than the limit of {self.max_bytes} bytes",
                code="upload_too_large",
                errors=[{"limit": "max_bytes", "value": self.max_bytes}],
            )
        if len(self._head) < HEAD_BYTES:
            self._head += data[: HEAD_BYTES - len(self._head)]
        self._hash.update(data)
        assert self._file is not None
        self._file.write(data)

    def finish(self) -> StoredUpload:
        assert self._file is not None
        self._file.close()
        self._file = None
        return StoredUpload(self.path, self._hash.hexdigest(), self.size, bytes(self._head))

    def discard(self) -> None:
        try:
            if self._file is not None:
                # On a full disk closing flushes and fails again; the file goes regardless.
                with suppress(OSError):
                    self._file.close()
                self._file = None
        finally:
            self.path.unlink(missing_ok=True)
