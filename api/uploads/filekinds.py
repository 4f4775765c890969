"""Which file kinds each upload accepts, from the name's extension, checked by magic bytes.

A name that promises one kind while the bytes are another (HTML sent as `.pt`, a zip
renamed `.tar`) answers 415 before anything parses the file; a declared SHA-256 that the
bytes do not have answers 422. The deep checks run later in the sandbox; this is only
the cheap front door, and it never imports torch.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping

from api.errors import InvalidInputError, UnsupportedMediaTypeError
from api.uploads.multipart import ReceivedUpload

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

DATASET_KINDS: Mapping[str, str] = {
    ".tar.gz": "tar.gz",
    ".tgz": "tar.gz",
    ".tar": "tar",
    ".zip": "zip",
    ".npz": "npz",
}
CHECKPOINT_KINDS: Mapping[str, str] = {
    ".safetensors": "safetensors",
    ".pt": "pt",
    ".pth": "pt",
    ".onnx": "onnx",
}


def declared_kind(filename: str, kinds: Mapping[str, str], what: str) -> str:
    name = filename.lower().rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    # Longest suffix first, so ".tar.gz" wins over a bare ".gz".
    for suffix in sorted(kinds, key=len, reverse=True):
        if name.endswith(suffix):
            return kinds[suffix]
    accepted = ", ".join(sorted(kinds))
    raise UnsupportedMediaTypeError(
        f"{what} file name {filename[:80]!r} has no accepted extension; accepted: {accepted}",
        code="unsupported_file_type",
    )


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def _is_zip(head: bytes) -> bool:
    return head[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def _is_safetensors(head: bytes) -> bool:
    # 8-byte little-endian header length, then a JSON object.
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return length > 1 and head[8:9] == b"{"


def _is_pickle(head: bytes) -> bool:
    # Protocol 2+ pickles start with PROTO (0x80) and a version byte; torch's legacy
    # format is such a pickle. Anything else (text, HTML) is not a checkpoint.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_gzip(head: bytes) -> bool:
    return head[:2] == b"\x1f\x8b"


def _is_torch_save(head: bytes) -> bool:
    # torch.save writes a zip archive; older torch a bare pickle.
    return _is_zip(head) or _is_pickle(head)


def _is_onnx(head: bytes) -> bool:
    # An ONNX ModelProto is protobuf, which has no magic: serializers write field 1
    # (ir_version, a varint, tag 0x08) first, with a small version number.
    return len(head) >= 2 and head[0] == 0x08 and 1 <= head[1] <= 64


MAGIC_CHECKS: Mapping[str, Callable[[bytes], bool]] = {
    "tar.gz": _is_gzip,
    "tar": _is_tar,
    "zip": _is_zip,
    "npz": _is_zip,
    "safetensors": _is_safetensors,
    "pt": _is_torch_save,
    "onnx": _is_onnx,
}


def check_magic(kind: str, head: bytes, filename: str) -> None:
    if not MAGIC_CHECKS[kind](head):
        raise UnsupportedMediaTypeError(
            f"file {filename[:80]!r} is named as {kind} but its content is not {kind}",
            code="content_mismatch",
        )


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
