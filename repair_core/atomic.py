"""Atomic, durable file writes: the one way `repair_core` (and repairctl) writes a file.

A reader sees the old file or the new one, never half of either, and once a write returns
the new file survives a crash or power loss. Every write follows the same steps:

1. a temp file in the target's own folder (`os.replace` is only atomic within one file
   system), named `.{target name}.{random hex}.tmp`, created exclusively;
2. the caller writes it (bytes, text, JSON, or a callback such as `torch.save` or
   safetensors' `save_file` that writes to the temp path);
3. the temp file is fsynced, so its data is on disk before it gets the target's name;
4. `os.replace` onto the target;
5. the folder is fsynced, so the rename itself is durable.

A failure at any step removes the temp file and leaves the target as it was.

Standard library only: the API process, which must not import torch, may use it too.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "atomic_path",
    "copy_file_atomic",
    "write_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def temp_path_for(target: Path) -> Path:
    """Create (exclusively, with the usual umask permissions) an empty temp file beside `target`."""
    while True:
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - 48 random bits colliding
            continue
        os.close(fd)
        return candidate


def fsync_path(path: Path) -> None:
    """Flush a written file's data to disk (any descriptor of the file will do)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Make renames in `folder` durable; not every platform lets a folder be opened for this."""
    with contextlib.suppress(OSError):
        fsync_path(folder)


@contextlib.contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path to write; on a clean exit it is fsynced and renamed onto `path`.

    For writers that take a file name (safetensors' `save_file`, matplotlib's `savefig`).
    The target's folder is created when missing.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after the rename
    fsync_folder(target.parent)


@contextlib.contextmanager
def atomic_open(path: Path | str) -> Iterator[IO[bytes]]:
    """A binary file handle whose contents replace `path` atomically on a clean exit.

    For writers that take a file object (`torch.save`, `np.savez`) or stream chunks.
    """
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        yield handle


def write_atomic(path: Path | str, write: Callable[[Path], object]) -> Path:
    """Call `write(temp_path)`, then put the result at `path` atomically; returns `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: Path | str, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, data: Any) -> Path:
    """`data` as indented JSON with sorted keys (stable bytes for the same content)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def copy_file_atomic(source: Path | str, path: Path | str) -> Path:
    """A copy of `source` at `path`, atomically (a reader never sees a partial copy)."""
    with atomic_open(path) as handle, open(source, "rb") as original:
        shutil.copyfileobj(original, handle)
    return Path(path)
