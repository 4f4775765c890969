"""Counters on bytes actually decompressed, so caps never trust a header's declared size."""

from __future__ import annotations

from typing import Protocol

from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.errors import LimitExceededError

CHUNK = 1024 * 1024  # bytes per read: bounds memory per call, large enough to amortise calls


class _Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class ByteBudget:
    """Decompressed bytes of a whole archive, against `max_total_bytes`."""

    def __init__(self, limits: IngestLimits, *, archive: str) -> None:
        self.used = 0
        self._cap = limits.max_total_bytes
        self._archive = archive

    def spend(self, n: int, *, where: str) -> None:
        self.used += n
        if self.used > self._cap:
            raise LimitExceededError(
                f"{self._archive}: unpacked size passes max_total_bytes={self._cap} "
                f"(at member {where!r})",
                limit="max_total_bytes",
                value=self._cap,
            )


class CappedReader:
    """Reads one member, raising as soon as its inflated bytes pass a cap or a ratio.

    `compressed_size` (zip) enables the ratio check; `budget` adds the bytes to the
    archive-wide total.
    """

    def __init__(
        self,
        stream: _Readable,
        *,
        name: str,
        cap: int,
        cap_name: str,
        limits: IngestLimits,
        budget: ByteBudget | None = None,
        compressed_size: int | None = None,
    ) -> None:
        self._stream = stream
        self._name = name
        self._cap = cap
        self._cap_name = cap_name
        self._limits = limits
        self._budget = budget
        self._compressed = compressed_size
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        if n < 0:
            n = CHUNK
        data = self._stream.read(min(n, self._cap + 1 - self.count) if n else 0)
        self._account(len(data))
        return data

    def readinto(self, buffer: memoryview) -> int:
        """Fill `buffer` (a flat byte view) completely; short data means truncation."""
        filled = 0
        while filled < len(buffer):
            data = self.read(min(CHUNK, len(buffer) - filled))
            if not data:
                break
            buffer[filled : filled + len(data)] = data
            filled += len(data)
        return filled

    def read_all(self) -> bytes:
        chunks = []
        while data := self.read(CHUNK):
            chunks.append(data)
        return b"".join(chunks)

    def _account(self, n: int) -> None:
        self.count += n
        if self.count > self._cap:
            raise LimitExceededError(
                f"member {self._name!r}: unpacked size passes {self._cap_name}={self._cap}",
                limit=self._cap_name,
                value=self._cap,
            )
        limits = self._limits
        if (
            self._compressed is not None
            and self.count > limits.ratio_grace_bytes
            and self.count > limits.max_ratio * max(self._compressed, 1)
        ):
            raise LimitExceededError(
                f"member {self._name!r}: compression ratio passes max_ratio={limits.max_ratio}",
                limit="max_ratio",
                value=limits.max_ratio,
            )
        if self._budget is not None and n:
            self._budget.spend(n, where=self._name)
