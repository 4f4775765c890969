"""Reading untrusted tar / tar.gz / zip archives member by member, never extracting.

`iter_archive_files` yields each regular file's bytes under its normalised name.
Nothing is written to disk, so there is no path to escape; names are still
checked (archive_names) because callers use them as labels and an archive that
carries links, devices, `..` or aliasing names is hostile and refused whole.
The refusal can come after earlier members were yielded (tar is a stream):
callers must collect into memory and publish nothing until iteration ends, as
every reader in this package does.
"""

from __future__ import annotations

import gzip
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from repair_core.datasets.ingest.archive_names import NameRegistry, normalize_member_name
from repair_core.datasets.ingest.capped import ByteBudget, CappedReader
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.datasets.ingest.zipsafe import check_zip, open_member
from repair_core.errors import ArchiveUnsafeError, LimitExceededError, RepairInputError

ArchiveKind = Literal["tar", "tar.gz", "zip", "npz"]

_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
# Failures of truncated or corrupt archives, as the stdlib raises them.
_CORRUPT = (
    tarfile.TarError,
    zipfile.BadZipFile,
    gzip.BadGzipFile,
    EOFError,
    zlib.error,
    NotImplementedError,
)


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    name: str  # relative, "/"-separated, NFC
    data: bytes


def detect_kind(path: Path) -> ArchiveKind:
    """The archive kind from its magic bytes; the file name is not consulted."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "npz" if _zip_holds_only_arrays(path) else "zip"
    if head[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as g:
                block = g.read(tarfile.BLOCKSIZE)
        except _CORRUPT as e:
            raise RepairInputError(f"{path.name}: gzip data is truncated or corrupt ({e})") from e
        if _is_tar_header(block):
            return "tar.gz"
        raise RepairInputError(f"{path.name}: gzip file does not hold a tar archive")
    if _is_tar_header(head):
        return "tar"
    raise RepairInputError(
        f"{path.name}: not a tar, tar.gz, zip or npz archive (starts with {head[:8].hex()})"
    )


def iter_archive_files(path: Path, limits: IngestLimits) -> Iterator[ArchiveFile]:
    """Every regular file of the archive at `path`, in archive order; folders are skipped."""
    kind = detect_kind(path)
    try:
        if kind in ("tar", "tar.gz"):
            yield from _iter_tar(path, gzipped=kind == "tar.gz", limits=limits)
        else:
            yield from _iter_zip(path, limits)
    except _CORRUPT as e:
        raise RepairInputError(f"{path.name}: archive is truncated or corrupt ({e})") from e


def _zip_holds_only_arrays(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except _CORRUPT as e:
        raise RepairInputError(f"{path.name}: zip is truncated or corrupt ({e})") from e
    return bool(names) and all(name.endswith(".npy") for name in names)


def _is_tar_header(block: bytes) -> bool:
    if len(block) < tarfile.BLOCKSIZE:
        return False
    if block == bytes(tarfile.BLOCKSIZE):
        return True  # an empty archive is only its end-of-archive blocks
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _iter_zip(path: Path, limits: IngestLimits) -> Iterator[ArchiveFile]:
    with zipfile.ZipFile(path) as zf:
        members = check_zip(
            zf,
            archive=path.name,
            limits=limits,
            cap=limits.max_member_bytes,
            cap_name="max_member_bytes",
        )
        budget = ByteBudget(limits, archive=path.name)
        for member in members:
            if member.is_dir:
                continue
            stream, reader = open_member(
                zf,
                member,
                limits=limits,
                cap=limits.max_member_bytes,
                cap_name="max_member_bytes",
                budget=budget,
            )
            with stream:
                data = reader.read_all()
            yield ArchiveFile(member.name, data)


class _Source(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...
    def seek(self, pos: int, whence: int = 0, /) -> int: ...


class _TarStream:
    """The (decompressed) tar byte stream tarfile reads, capped by position.

    Position counts every inflated byte, headers and skipped padding included, so
    `max_total_bytes` holds however tarfile moves. A single read larger than
    `max_member_bytes` can only be a pax or GNU long-name header: refused before
    tarfile allocates it.
    """

    def __init__(self, base: _Source, limits: IngestLimits, archive: str) -> None:
        self._base = base
        self._limits = limits
        self._archive = archive
        self._pos = 0

    def read(self, n: int = -1, /) -> bytes:
        if n < 0 or n > self._limits.max_member_bytes:
            raise LimitExceededError(
                f"{self._archive}: a tar header at offset {self._pos} asks for more than "
                f"max_member_bytes={self._limits.max_member_bytes}",
                limit="max_member_bytes",
                value=self._limits.max_member_bytes,
            )
        data = self._base.read(n)
        self._pos += len(data)
        self._check(self._pos)
        return data

    def seek(self, pos: int, whence: int = 0, /) -> int:
        if whence != 0:
            raise ValueError("only absolute seeks are supported")
        self._check(pos)
        self._base.seek(pos)
        self._pos = pos
        return pos

    def tell(self) -> int:
        return self._pos

    def _check(self, pos: int) -> None:
        cap = self._limits.max_total_bytes
        if pos > cap:
            raise LimitExceededError(
                f"{self._archive}: unpacked size passes max_total_bytes={cap}",
                limit="max_total_bytes",
                value=cap,
            )


def _iter_tar(path: Path, *, gzipped: bool, limits: IngestLimits) -> Iterator[ArchiveFile]:
    with open(path, "rb") as raw:
        base: _Source = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        stream = _TarStream(base, limits, path.name)
        # "r:" (not "r|"): tarfile then reads our stream directly, so every header read
        # passes through _TarStream's checks. Members are read in order: seeks only go forward.
        tar = tarfile.TarFile(fileobj=stream, mode="r")  # type: ignore[arg-type]
        registry = NameRegistry()
        count = 0
        while (member := tar.next()) is not None:
            # tarfile keeps every header otherwise: ~1 GB for 2M members.
            tar.members.clear()  # type: ignore[attr-defined]
            count += 1
            if count > limits.max_members:
                raise LimitExceededError(
                    f"{path.name}: more than max_members={limits.max_members} members",
                    limit="max_members",
                    value=limits.max_members,
                )
            name = normalize_member_name(member.name, limits)
            _check_tar_type(member, name)
            is_dir = member.isdir()
            if not name:
                if is_dir:
                    continue
                raise ArchiveUnsafeError(f"member {member.name!r}: file without a name")
            registry.add(name, is_dir=is_dir)
            if is_dir:
                continue
            if member.size > limits.max_member_bytes:
                raise LimitExceededError(
                    f"member {name!r}: {member.size} bytes, more than "
                    f"max_member_bytes={limits.max_member_bytes}",
                    limit="max_member_bytes",
                    value=limits.max_member_bytes,
                )
            fileobj = tar.extractfile(member)
            if fileobj is None:  # pragma: no cover - regular files always have data
                raise RepairInputError(f"member {name!r}: no data")
            reader = CappedReader(
                fileobj, name=name, cap=limits.max_member_bytes, cap_name="max_member_bytes",
                limits=limits,
            )  # fmt: skip
            yield ArchiveFile(name, reader.read_all())
        _check_tar_end(tar, stream, path.name, drain=gzipped, limits=limits)


def _check_tar_type(member: tarfile.TarInfo, name: str) -> None:
    shown = name or member.name
    if member.issym() or member.islnk():
        kind = "symbolic link" if member.issym() else "hard link"
        raise ArchiveUnsafeError(f"member {shown!r}: {kind} to {member.linkname!r}")
    if member.ischr() or member.isblk():
        raise ArchiveUnsafeError(f"member {shown!r}: device file")
    if member.isfifo():
        raise ArchiveUnsafeError(f"member {shown!r}: FIFO")
    if member.issparse() or (member.type not in _FILE_TYPES and not member.isdir()):
        raise ArchiveUnsafeError(f"member {shown!r}: unsupported tar entry type {member.type!r}")


def _check_tar_end(
    tar: tarfile.TarFile, stream: _TarStream, archive: str, *, drain: bool, limits: IngestLimits
) -> None:
    # tarfile stops silently at a truncated or garbled header once past the first
    # member; a well-formed archive ends with a zero block exactly there.
    stream.seek(tar.offset)
    if stream.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
        raise RepairInputError(
            f"{archive}: archive is truncated or corrupt (no end-of-archive marker "
            f"at offset {tar.offset})"
        )
    if drain:
        # Reading to the end makes gzip verify its length and CRC trailer. Chunks stay under
        # the per-read cap, which refuses any single read above max_member_bytes.
        chunk = min(1024 * 1024, limits.max_member_bytes)
        while stream.read(chunk):
            pass
