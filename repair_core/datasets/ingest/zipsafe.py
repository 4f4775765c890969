"""Checks a zip's central directory before any member is inflated.

Python's `zipfile` trusts the directory: entries may share bytes (CVE-2024-0450,
"overlapping" bombs, fixed only in 3.11.8/3.12.2), declare any size, carry a unix
mode that makes them links or devices, or be encrypted. Every entry is checked here
first, so a bad archive is refused before any member is inflated.
"""

from __future__ import annotations

import itertools
import stat
import struct
import zipfile
from dataclasses import dataclass
from typing import IO

from repair_core.datasets.ingest.archive_names import NameRegistry, normalize_member_name
from repair_core.datasets.ingest.capped import ByteBudget, CappedReader
from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.errors import ArchiveUnsafeError, LimitExceededError, RepairInputError

_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile.structFileHeader, 30 bytes
_LOCAL_MAGIC = b"PK\x03\x04"
_UNIX = 3  # ZipInfo.create_system of archives written on unix
_SUPPORTED = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


@dataclass(frozen=True)
class ZipMember:
    name: str  # normalised, see archive_names
    info: zipfile.ZipInfo
    is_dir: bool


def check_zip(
    zf: zipfile.ZipFile, *, archive: str, limits: IngestLimits, cap: int, cap_name: str
) -> list[ZipMember]:
    """All entries of `zf` in data order, or raise naming the first bad entry.

    `cap`/`cap_name` bound one member's inflated size (max_member_bytes for files,
    max_npy_bytes plus header room for arrays).
    """
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise LimitExceededError(
            f"{archive}: {len(infos)} members, more than max_members={limits.max_members}",
            limit="max_members",
            value=limits.max_members,
        )
    registry = NameRegistry()
    members = []
    declared_total = 0
    for info in infos:
        # orig_filename keeps what zipfile cuts off at a NUL byte.
        name = normalize_member_name(info.orig_filename, limits)
        is_dir = _check_entry_type(info, name)
        if not name:
            if is_dir:
                continue
            raise ArchiveUnsafeError(f"member {info.orig_filename!r}: file without a name")
        registry.add(name, is_dir=is_dir)
        if info.flag_bits & 0x1:
            raise RepairInputError(f"member {name!r}: encrypted zip entries are not accepted")
        if info.compress_type not in _SUPPORTED:
            raise RepairInputError(
                f"member {name!r}: zip compression method {info.compress_type} is not "
                f"accepted (only {', '.join(_SUPPORTED.values())})"
            )
        _check_declared_size(info, name, limits, cap, cap_name)
        declared_total += info.file_size
        if declared_total > limits.max_total_bytes:
            raise LimitExceededError(
                f"{archive}: declared unpacked size passes "
                f"max_total_bytes={limits.max_total_bytes} (at member {name!r})",
                limit="max_total_bytes",
                value=limits.max_total_bytes,
            )
        members.append(ZipMember(name, info, is_dir))
    _check_no_overlap(zf, infos)
    return sorted(members, key=lambda member: member.info.header_offset)


def open_member(
    zf: zipfile.ZipFile,
    member: ZipMember,
    *,
    limits: IngestLimits,
    cap: int,
    cap_name: str,
    budget: ByteBudget | None,
) -> tuple[IO[bytes], CappedReader]:
    """The raw member stream (close it) and a reader counting what it inflates."""
    stream = zf.open(member.info)
    reader = CappedReader(
        stream,
        name=member.name,
        cap=cap,
        cap_name=cap_name,
        limits=limits,
        budget=budget,
        compressed_size=member.info.compress_size,
    )
    return stream, reader


def _check_entry_type(info: zipfile.ZipInfo, name: str) -> bool:
    mode = info.external_attr >> 16
    if info.create_system == _UNIX and stat.S_IFMT(mode):
        if stat.S_ISLNK(mode):
            raise ArchiveUnsafeError(f"member {name!r}: symbolic link")
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise ArchiveUnsafeError(f"member {name!r}: device file")
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            raise ArchiveUnsafeError(f"member {name!r}: FIFO or socket")
        if stat.S_ISDIR(mode):
            return True
    return info.is_dir()


def _check_declared_size(
    info: zipfile.ZipInfo, name: str, limits: IngestLimits, cap: int, cap_name: str
) -> None:
    if info.file_size > cap:
        raise LimitExceededError(
            f"member {name!r}: declares {info.file_size} bytes, more than {cap_name}={cap}",
            limit=cap_name,
            value=cap,
        )
    if info.file_size > limits.ratio_grace_bytes and info.file_size > limits.max_ratio * max(
        info.compress_size, 1
    ):
        raise LimitExceededError(
            f"member {name!r}: declared compression ratio "
            f"{info.file_size / max(info.compress_size, 1):.0f} passes "
            f"max_ratio={limits.max_ratio}",
            limit="max_ratio",
            value=limits.max_ratio,
        )


def _check_no_overlap(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    fp = zf.fp
    if fp is None:  # pragma: no cover - only for closed archives
        raise RepairInputError("zip archive is closed")
    spans = []
    for info in sorted(infos, key=lambda i: i.header_offset):
        fp.seek(info.header_offset)
        header = fp.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
            raise RepairInputError(
                f"member {info.orig_filename!r}: local header missing (truncated or corrupt zip)"
            )
        fields = _LOCAL_HEADER.unpack(header)
        data_start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
        spans.append((info.header_offset, data_start + info.compress_size, info.orig_filename))
    directory_start = int(getattr(zf, "start_dir", 0)) or None
    for (_, end, name), (next_start, _, next_name) in itertools.pairwise(spans):
        if end > next_start:
            raise ArchiveUnsafeError(
                f"member {name!r}: its data overlaps entry {next_name!r} (overlapping zip)"
            )
    if spans and directory_start is not None and spans[-1][1] > directory_start:
        raise ArchiveUnsafeError(
            f"member {spans[-1][2]!r}: its data overlaps the zip central directory"
        )
