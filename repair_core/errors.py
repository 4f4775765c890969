"""Errors `repair_core` raises for bad input. Messages say what is wrong and where."""

from __future__ import annotations


class RepairInputError(ValueError):
    """The caller's data, model or config cannot be used; retrying will not help."""


class UnsafeCheckpointError(RepairInputError):
    """A checkpoint tried to run code or is not a plain tensor container."""


class ArchiveUnsafeError(RepairInputError):
    """An archive holds a member that could escape or alias the extraction target.

    Links, devices, FIFOs, absolute or `..` names, overlapping zip entries and
    case-folded duplicates reject the whole archive: nothing from it is used.
    """

    code = "archive_unsafe"


class LimitExceededError(RepairInputError):
    """Input is larger than a configured cap; the message names the cap and its value."""

    code = "limit_exceeded"

    def __init__(self, message: str, *, limit: str = "", value: float = 0) -> None:
        super().__init__(message)
        self.limit = limit
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields are not in `args`; keep them when crossing a process boundary.
        return (_rebuild_limit_exceeded, (str(self), self.limit, self.value))


def _rebuild_limit_exceeded(message: str, limit: str, value: float) -> LimitExceededError:
    return LimitExceededError(message, limit=limit, value=value)


class ImageDecodeError(RepairInputError):
    """Bytes that should be an image are not a decodable PNG/JPEG/BMP/WEBP within the caps."""

    code = "image_invalid"
