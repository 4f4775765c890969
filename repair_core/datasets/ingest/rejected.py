"""A file left out of an ingested dataset or failure batch, with the reason why."""

from __future__ import annotations

from dataclasses import dataclass

# Folders and files that archivers and desktops add; never data, never reported.
_JUNK_DIRS = frozenset({"__MACOSX"})
_JUNK_FILES = frozenset({"Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class Rejected:
    file: str  # the member name inside the upload
    reason: str


def is_junk(name: str) -> bool:
    """True for OS metadata (`__MACOSX/`, `.DS_Store`, `._x`, `Thumbs.db`, dot-folders)."""
    parts = name.split("/")
    if parts[-1] in _JUNK_FILES:
        return True
    return any(part.startswith(".") or part in _JUNK_DIRS for part in parts)
