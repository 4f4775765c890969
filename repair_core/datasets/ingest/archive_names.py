"""Member names of untrusted archives: normalised, or the whole archive is refused.

A name is accepted only if it stays inside the archive root on every platform we
might ever extract to: relative, no `..`, no NUL or control characters, no
backslash (Windows separator), no drive letter or UNC prefix, components of at most
255 bytes. Names are NFC-normalised so that two spellings of "é" are one file, and
case-folded duplicates are refused because they alias on case-insensitive disks.
"""

from __future__ import annotations

import re
import unicodedata

from repair_core.datasets.ingest.limits import IngestLimits
from repair_core.errors import ArchiveUnsafeError, LimitExceededError

_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc, NUL included


def normalize_member_name(raw: str, limits: IngestLimits) -> str:
    """The archive-relative NFC path of `raw` ("" for the root itself), or raise."""
    shown = ascii(raw)[:200]
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        # tarfile keeps undecodable bytes as lone surrogates.
        raise ArchiveUnsafeError(f"member {shown}: name is not valid UTF-8") from None
    if "\x00" in raw:
        raise ArchiveUnsafeError(f"member {shown}: name contains a NUL byte")
    if "\\" in raw:
        raise ArchiveUnsafeError(
            f"member {shown}: name contains a backslash (Windows path or UNC name)"
        )
    if _CONTROL.search(raw):
        raise ArchiveUnsafeError(f"member {shown}: name contains a control character")
    if raw.startswith("/"):
        raise ArchiveUnsafeError(f"member {shown}: absolute path")
    if _DRIVE.match(raw):
        raise ArchiveUnsafeError(f"member {shown}: name starts with a drive letter")
    name = unicodedata.normalize("NFC", raw)
    if len(name.encode("utf-8")) > limits.max_name_bytes:
        raise LimitExceededError(
            f"member {shown}: name longer than max_name_bytes={limits.max_name_bytes}",
            limit="max_name_bytes",
            value=limits.max_name_bytes,
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise ArchiveUnsafeError(f"member {shown}: name contains '..'")
        if len(part.encode("utf-8")) > limits.max_component_bytes:
            raise LimitExceededError(
                f"member {shown}: path component longer than "
                f"max_component_bytes={limits.max_component_bytes}",
                limit="max_component_bytes",
                value=limits.max_component_bytes,
            )
    return "/".join(parts)


class NameRegistry:
    """Refuses a second member whose case-folded path was already used.

    Also refuses a file that is later used as a folder (or the reverse): on extraction
    one would overwrite or redirect the other.
    """

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()

    def add(self, name: str, *, is_dir: bool) -> None:
        key = name.casefold()
        if not key:
            return
        if key in self._files or (not is_dir and key in self._dirs):
            raise ArchiveUnsafeError(f"member {name!r}: duplicate name (case-insensitive)")
        parts = key.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent in self._files:
                raise ArchiveUnsafeError(
                    f"member {name!r}: its folder {parent!r} is also a file in the archive"
                )
            self._dirs.add(parent)
        if is_dir:
            self._dirs.add(key)
        else:
            self._files.add(key)
