"""Receiving an upload: a temp file written while hashed and counted against a cap."""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from api.errors import PayloadTooLargeError

# Bytes of the upload kept in memory for magic-byte sniffing.
HEAD_BYTES = 512


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
