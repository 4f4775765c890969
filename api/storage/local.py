"""The artifact store's local-folder backend (the embedded default), and the interface the
S3 backend (`api.storage.s3`) overrides: files under `root/<owner_id>/<uuid>`, published
atomically.

Writers fill a temp file under `root/.tmp` (same file system, so `os.replace` is atomic),
fsync it, and only then move it to its key; rows are committed after the move. A crash
in between leaves a file without a row, which `sweep_temp` and `sweep_orphans` (the
upkeep sweep, `api.services.upkeep`) remove; it never leaves a row pointing at a
half-written file.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path

from api.storage import keys
from repair_core.atomic import fsync_folder, fsync_path


class ArtifactStore:
    """The local folder `root` is the store. Subclasses keep `root` as this machine's
    scratch copy and override the operations marked "remote" below; everything else
    (keys, temp files, the orphan sweep) is shared."""

    # Whether the store lives elsewhere than `root` (then `root` is a scratch copy).
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.tmp_dir = self.root / ".tmp"

    new_key = staticmethod(keys.new_key)
    figure_key = staticmethod(keys.figure_key)
    variant_model_key = staticmethod(keys.variant_model_key)

    def path(self, key: str) -> Path:
        """The local file behind `key` (on a remote store: its scratch copy, which may not
        be there; `fetch` makes sure it is); rejects anything that could leave the root."""
        return self.root.joinpath(*keys.check_key(key))

    def fetch(self, key: str) -> Path:
        """(remote) A local file holding the stored object `key`, verified; raises
        FileNotFoundError when the store has no such object."""
        path = self.path(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        return path

    def size(self, key: str) -> int:
        """(remote) The stored object's size in bytes; FileNotFoundError if absent."""
        return self.path(key).stat().st_size

    def presigned_url(self, key: str, *, file_name: str, expires_seconds: int) -> str | None:
        """(remote) A URL that downloads `key` without our credentials, or None where the
        store cannot make one (the local folder)."""
        return None

    def pull_tree(self, key: str) -> int:
        """(remote) Copy the stored objects under the folder `key` into the scratch copy;
        returns how many were fetched. The local folder is its own copy."""
        return 0

    def push_tree(self, key: str, *, delete_extra: bool = False) -> int:
        """(remote) Write the scratch folder `key` through to the store (files changed since
        the last push; dot-named temp files skipped); with `delete_extra`, remove stored
        objects under it that the folder no longer has. Returns how many were uploaded."""
        return 0

    def temp_path(self, suffix: str = "") -> Path:
        # Private: sandbox children (another user) reach only their own work folder in it.
        self.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.tmp_dir / f"{uuid.uuid4().hex}{suffix}"

    def publish(self, tmp: Path, key: str) -> None:
        """(remote) Move a finished temp file to `key`, durably."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fsync_path(tmp)
        os.replace(tmp, target)
        fsync_folder(target.parent)

    def write_bytes(self, key: str, data: bytes) -> None:
        tmp = self.temp_path()
        try:
            tmp.write_bytes(data)
            self.publish(tmp, key)
        finally:
            tmp.unlink(missing_ok=True)

    def push_file(self, key: str) -> bool:
        """(remote) Upload the scratch file `key` if it changed since its last push; whether
        it was uploaded."""
        return False

    def drop_scratch(self, key: str) -> None:
        """(remote) Remove this machine's scratch copy of the folder `key`; the local
        folder is the store itself, so nothing goes."""

    def delete(self, key: str) -> None:
        """(remote) Remove `key`; a missing one is no error."""
        self.path(key).unlink(missing_ok=True)

    def delete_tree(self, key: str) -> None:
        """(remote) Remove the folder behind `key` and everything in it (a job's folder)."""
        path = self.path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)

    def exists(self, key: str) -> bool:
        """(remote)"""
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
        """(remote) (key, mtime) of every published artifact: the files `<owner>/<name>` that
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
        """(remote) (key, mtime) of every job folder `<owner>/jobs/<job id>`."""
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
                    self.delete(key)
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
