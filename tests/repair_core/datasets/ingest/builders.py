"""Small crafted files for the ingestion tests: images, hostile tars and zips, npz."""

from __future__ import annotations

import io
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(
    width: int = 4, height: int = 4, *, mode: str = "RGB", color: object = (10, 20, 30)
) -> bytes:
    image = Image.new(mode, (width, height), color)  # type: ignore[arg-type]
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def encoded(fmt: str, width: int = 8, height: int = 8, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), (200, 100, 50)[: len(mode)]).save(out, format=fmt)
    return out.getvalue()


def png_header_bomb(width: int, height: int) -> bytes:
    """A ~70-byte PNG whose header declares `width` x `height` (no real pixel data)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


EPS = (
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
    b"newpath 0 0 moveto 8 8 lineto stroke\n%%EOF\n"
)
FITS = b"SIMPLE  =                    T" + b" " * 50 + b"END" + b" " * 2797


@dataclass
class TarEntry:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""


def write_tar(
    path: Path, entries: Iterable[TarEntry | tuple[str, bytes]], *, gz: bool = False
) -> Path:
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            if isinstance(entry, tuple):
                entry = TarEntry(*entry)
            info = tarfile.TarInfo(entry.name)
            info.type = entry.type
            info.linkname = entry.linkname
            info.mtime = int(time.time())
            if entry.type in (tarfile.REGTYPE, tarfile.AREGTYPE):
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return path


def write_zip(
    path: Path,
    entries: Iterable[tuple[str, bytes]],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    unix_mode: int | None = None,
) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            if unix_mode is not None:
                info.create_system = 3
                info.external_attr = unix_mode << 16
            zf.writestr(info, data)
    return path


def patch_zip_names(path: Path, old: bytes, new: bytes) -> None:
    """Rewrite a member name in the raw bytes (local and central headers alike).

    zipfile would normalise names like `C:\\x` on write; hostile archives are not so polite.
    """
    raw = path.read_bytes()
    assert len(old) == len(new) and raw.count(old) == 2
    path.write_bytes(raw.replace(old, new))


def overlapping_zip(path: Path) -> Path:
    """Two central-directory entries whose data is the same local entry (CVE-2024-0450)."""
    write_zip(path, [("a.txt", b"x" * 100)], compression=zipfile.ZIP_STORED)
    raw = path.read_bytes()
    eocd_at = raw.rindex(b"PK\x05\x06")
    (cd_size, cd_offset) = struct.unpack_from("<II", raw, eocd_at + 12)
    central = raw[cd_offset : cd_offset + cd_size]
    twin = central.replace(b"a.txt", b"b.txt")
    eocd = bytearray(raw[eocd_at:])
    struct.pack_into("<HHI", eocd, 8, 2, 2, cd_size * 2)
    path.write_bytes(raw[:cd_offset] + central + twin + bytes(eocd))
    return path


def image_tree(
    classes: dict[str, int], *, split: str, prefix: str = "", size: int = 4, mode: str = "RGB"
) -> list[tuple[str, bytes]]:
    """`count` distinct PNGs per class under `prefix + split/class/`."""
    entries = []
    for index, (name, count) in enumerate(sorted(classes.items())):
        for i in range(count):
            color: object = (index * 40, i, 7) if mode == "RGB" else index * 40 + i
            entries.append(
                (
                    f"{prefix}{split}/{name}/{i:03d}.png",
                    png_bytes(size, size, mode=mode, color=color),
                )
            )
    return entries


def write_npy_member(zf: zipfile.ZipFile, key: str, header: dict[str, object], data: bytes) -> None:
    """A `.npy` member with a hand-written header: shape and dtype can lie about `data`."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, header)
    zf.writestr(f"{key}.npy", out.getvalue() + data)
