"""What every upload goes through before a row exists: kind check, digest check, sandbox.

Untrusted bytes are only ever parsed by `api.validation` functions running in the
resource-limited child of `api.sandbox`; this module never imports torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from api.errors import InvalidInputError
from api.filekinds import check_magic, declared_kind
from api.settings import SandboxSettings, UploadLimits
from api.uploads import ReceivedUpload

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# The stable `code` of each repair_core input error, by class name (the child re-raises
# them; matching by name keeps this module free of imports that may pull in torch).
ERROR_CODES = {
    "UnsafeCheckpointError": "checkpoint_unsafe",
    "ArchiveUnsafeError": "archive_unsafe",
    "LimitExceededError": "limit_exceeded",
    "ImageDecodeError": "image_invalid",
}


def check_upload(
    upload: ReceivedUpload, *, kinds: Mapping[str, str], what: str, declared_sha256: str | None
) -> str:
    """The upload's kind from its name, confirmed by its magic bytes; checks the digest."""
    kind = declared_kind(upload.filename, kinds, what)
    check_magic(kind, upload.stored.head, upload.filename)
    if declared_sha256 is not None:
        declared = declared_sha256.strip().lower()
        if not _SHA256_RE.match(declared):
            raise InvalidInputError(
                "form field `sha256` must be 64 hex digits",
                errors=[{"loc": ["body", "sha256"], "message": "not a SHA-256 hex digest"}],
            )
        if declared != upload.stored.sha256:
            raise InvalidInputError(
                f"{what} SHA-256 mismatch: declared {declared}, received {upload.stored.sha256}",
                code="digest_mismatch",
            )
    return kind


def ingest_limits(limits: UploadLimits) -> dict[str, int]:
    """The archive/image caps handed to the child as plain data: the keyword arguments
    of `repair_core.datasets.ingest.limits.IngestLimits` (the rest keep their defaults)."""
    return {
        "max_members": limits.archive_members,
        "max_member_bytes": limits.member_bytes,
        "max_total_bytes": limits.unpacked_bytes,
        "max_image_pixels": limits.image_pixels,
    }


def run_validation(
    fn: Callable[..., dict[str, Any]],
    *args: Any,
    sandbox: SandboxSettings,
    what: str,
    extra_memory_bytes: int = 0,
) -> dict[str, Any]:
    """Run `fn(*args)` in the sandboxed child; map its failures to 422 problems."""
    from api.sandbox import SandboxError, run_sandboxed
    from repair_core.errors import RepairInputError

    try:
        summary: dict[str, Any] = run_sandboxed(
            fn,
            *args,
            memory_bytes=sandbox.memory_bytes + extra_memory_bytes,
            cpu_seconds=sandbox.cpu_seconds,
            timeout_seconds=sandbox.timeout_seconds,
        )
        return summary
    except RepairInputError as exc:
        code = getattr(exc, "code", None) or next(
            (ERROR_CODES[c.__name__] for c in type(exc).__mro__ if c.__name__ in ERROR_CODES),
            "invalid_input",
        )
        details = []
        if getattr(exc, "limit", ""):
            details.append({"limit": exc.limit, "value": getattr(exc, "value", None)})  # type: ignore[attr-defined]
        raise InvalidInputError(f"{what}: {exc}", code=str(code), errors=details) from exc
    except SandboxError as exc:
        raise InvalidInputError(
            f"{what} could not be validated within the limits (memory "
            f"{sandbox.memory_bytes + extra_memory_bytes} bytes, cpu {sandbox.cpu_seconds} s, "
            f"wall {sandbox.timeout_seconds:g} s): {exc}",
            code="validation_failed",
        ) from exc


def discard(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            with suppress(OSError):
                path.unlink(missing_ok=True)
