"""Streaming multipart uploads: one file part to disk, a few small text fields to memory.

The body is parsed as it arrives (python-multipart's push parser), so a file is never
held in memory and caps trip as soon as a counter passes them: Content-Length over the
cap answers 413 before a byte is read; a chunked body answers 413 at the first chunk
past it. On any failure, including a client that disconnects, the temp file is removed.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from api.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError
from api.storage import CappedHashingWriter, StoredUpload

# Room for multipart framing and the small fields on top of the file cap.
FRAMING_SLACK_BYTES = 1024 * 1024
MAX_FIELDS = 10
MAX_FIELD_BYTES = 64 * 1024
MAX_PART_HEADERS = 16
MAX_HEADER_BYTES = 8 * 1024
MAX_FILENAME_CHARS = 255
# Bytes a client may send after the closing boundary (the parser would skip any amount,
# up to the whole body cap, of a flood there); a trailing CRLF or two is all a real one sends.
MAX_EPILOGUE_BYTES = 1024


@dataclass(frozen=True)
class ReceivedUpload:
    stored: StoredUpload
    filename: str  # the client's name, escaped: metadata only, never a path
    fields: dict[str, str] = field(default_factory=dict)
    # The storage reservation that holds its bytes against the quota while in flight.
    reservation_id: uuid.UUID | None = None


def escape_filename(raw: str) -> str:
    """Printable form of a client file name: control, format (bidi) and NUL escaped, then
    cut to `MAX_FILENAME_CHARS` so it always fits the columns that keep it (escapes grow a
    name up to tenfold). A cut keeps the extension, which says the upload's kind, and
    never splits an escape."""
    pieces = [
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _ESCAPED else ch
        for ch in raw
    ]
    if sum(len(p) for p in pieces) <= MAX_FILENAME_CHARS:
        return "".join(pieces)
    match = _EXTENSION_RE.search(raw)
    extension = match.group(0) if match else ""
    if extension:
        pieces = pieces[: -len(extension)]
    budget = MAX_FILENAME_CHARS - len(_CUT_MARK) - len(extension)
    head: list[str] = []
    for piece in pieces:
        budget -= len(piece)
        if budget < 0:
            break
        head.append(piece)
    return "".join(head) + _CUT_MARK + extension


_ESCAPED = {"Cc", "Cf", "Cs", "Co", "Cn"}
_EXTENSION_RE = re.compile(r"(\.[A-Za-z0-9]{1,10}){1,2}$")
_CUT_MARK = "\u2026"  # "…", where a long name was cut


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequestError(f"invalid Content-Length header {raw[:32]!r}", code="bad_header")
    return int(raw)


class _PartCollector:
    """Callbacks for the push parser: routes part bytes to the file or to a field buffer."""

    def __init__(self, *, file_field: str, allowed_fields: frozenset[str]) -> None:
        self.file_field = file_field
        self.allowed_fields = allowed_fields
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_chunks: list[bytes] = []
        self.ended = False
        self._parts = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._current: str | None = None  # field name of the part being read
        self._is_file = False
        self._value = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_FIELDS + 1:
            raise BadRequestError(f"too many form parts (limit {MAX_FIELDS + 1})")
        self._headers = []
        self._current = None
        self._is_file = False
        self._value = bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_field) + len(self._header_value) > MAX_HEADER_BYTES:
            raise BadRequestError(f"a part header is longer than {MAX_HEADER_BYTES} bytes")

    def _header_end(self) -> None:
        if len(self._headers) >= MAX_PART_HEADERS:
            raise BadRequestError(f"a form part has more than {MAX_PART_HEADERS} headers")
        self._headers.append((bytes(self._header_field).lower(), bytes(self._header_value)))
        self._header_field = bytearray()
        self._header_value = bytearray()

    def _headers_finished(self) -> None:
        disposition = next((v for k, v in self._headers if k == b"content-disposition"), None)
        if disposition is None:
            raise BadRequestError("a form part has no Content-Disposition header")
        _kind, options = parse_options_header(disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == self.file_field:
            if self.filename is not None:
                raise BadRequestError(f"send exactly one `{self.file_field}` part")
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self._is_file = True
        elif name in self.allowed_fields:
            if name in self.fields:
                raise BadRequestError(f"form field `{name}` given twice")
        else:
            expected = ", ".join(sorted({self.file_field, *self.allowed_fields}))
            raise BadRequestError(
                f"unknown form field `{escape_filename(name)[:64]}`; expected: {expected}"
            )
        self._current = name

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.file_chunks.append(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise PayloadTooLargeError(
                f"form field `{self._current}` is longer than {MAX_FIELD_BYTES} bytes"
            )

    def _part_end(self) -> None:
        if self._current is not None and not self._is_file:
            try:
                self.fields[self._current] = self._value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadRequestError(f"form field `{self._current}` is not UTF-8") from exc

    def _end(self) -> None:
        self.ended = True


async def receive_upload(
    request: Request,
    *,
    dest: Path,
    max_file_bytes: int,
    what: str,
    allowed_fields: frozenset[str] = frozenset(),
    file_field: str = "file",
    on_bytes: Callable[[int], Awaitable[None]] | None = None,
) -> ReceivedUpload:
    """Stream a multipart/form-data body with one file part into `dest`.

    Raises 415 for any other media type, 413 past `max_file_bytes`, 400 for malformed
    or unexpected parts. `dest` does not exist afterwards unless this returns.
    `on_bytes(n)` is awaited before the body is read (n: its Content-Length, 0 when
    chunked) and after each chunk (n: bytes received so far): the quota reservation,
    which raises to refuse the rest.
    """
    media_type, params = parse_options_header(request.headers.get("content-type"))
    if media_type != b"multipart/form-data":
        got = media_type.decode("latin-1")[:64] or "none"
        raise UnsupportedMediaTypeError(
            f"{what} must be sent as multipart/form-data with a `{file_field}` part "
            f"(Content-Type was {got})"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequestError("multipart/form-data Content-Type has no boundary")
    max_body = max_file_bytes + FRAMING_SLACK_BYTES
    declared = _content_length(request)
    if declared is not None and declared > max_body:
        raise PayloadTooLargeError(
            f"{what} is larger than the limit of {max_file_bytes} bytes "
            f"(Content-Length {declared})",
            code="upload_too_large",
            errors=[{"limit": "max_bytes", "value": max_file_bytes}],
        )
    collector = _PartCollector(file_field=file_field, allowed_fields=allowed_fields)
    try:
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    except FormParserError as exc:
        raise BadRequestError(f"invalid multipart boundary: {exc}") from exc
    if on_bytes is not None:
        await on_bytes(declared or 0)
    writer = CappedHashingWriter(dest, max_bytes=max_file_bytes, what=what)
    received = 0
    epilogue = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if collector.ended:
                epilogue += len(chunk)
                if epilogue > MAX_EPILOGUE_BYTES:
                    raise BadRequestError(
                        f"more than {MAX_EPILOGUE_BYTES} bytes after the closing boundary",
                        code="multipart_epilogue",
                    )
            if on_bytes is not None:
                await on_bytes(received)
            if received > max_body:
                raise PayloadTooLargeError(
                    f"{what} is larger than the limit of {max_file_bytes} bytes",
                    code="upload_too_large",
                    errors=[{"limit": "max_bytes", "value": max_file_bytes}],
                )
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise BadRequestError(f"malformed multipart body: {exc}") from exc
            if collector.file_chunks:
                chunks, collector.file_chunks = collector.file_chunks, []
                await anyio.to_thread.run_sync(_write_all, writer, chunks)
        parser.finalize()
        if not collector.ended:
            raise BadRequestError("multipart body ended before its closing boundary")
        if collector.filename is None:
            raise BadRequestError(f"missing the `{file_field}` part (the {what})")
        stored = await anyio.to_thread.run_sync(writer.finish)
    except BaseException:
        writer.discard()
        raise
    return ReceivedUpload(stored, escape_filename(collector.filename), collector.fields)


def _write_all(writer: CappedHashingWriter, chunks: list[bytes]) -> None:
    for chunk in chunks:
        writer.write(chunk)
