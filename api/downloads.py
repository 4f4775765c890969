"""Serving a stored file: the one way a route answers with an artifact's bytes.

The local folder goes through Starlette's `FileResponse` (Range, If-Range, Last-Modified).
An S3 store streams the object through the API with single-range support, or, where
`artifacts.s3.presign_downloads` is set, answers 307 to a presigned URL that expires after
`presign_seconds` (the URL is minted for the owner who passed the route's owner check).
"""

from __future__ import annotations

import re

from fastapi import Request, Response, status
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse

from api.errors import NotFoundError
from api.settings import S3Settings
from api.storage import ArtifactStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def stored_response(
    request: Request,
    store: ArtifactStore,
    key: str,
    *,
    media_type: str,
    s3: S3Settings,
    file_name: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    headers = dict(headers or {})
    if not store.remote:
        return FileResponse(
            store.path(key), media_type=media_type, filename=file_name, headers=headers
        )
    if s3.presign_downloads:
        url = store.presigned_url(
            key, file_name=file_name or key.rsplit("/", 1)[-1], expires_seconds=s3.presign_seconds
        )
        if url is not None:
            return RedirectResponse(
                url, status_code=status.HTTP_307_TEMPORARY_REDIRECT, headers=headers
            )
    from api.storage.s3 import S3ArtifactStore

    assert isinstance(store, S3ArtifactStore)
    try:
        size = store.size(key)
    except FileNotFoundError:
        # Deleted between the service's check and here (a concurrent DELETE).
        raise NotFoundError("the stored file is missing") from None
    headers["Accept-Ranges"] = "bytes"
    if file_name is not None:
        headers["Content-Disposition"] = f'attachment; filename="{file_name}"'
    start, end = 0, size - 1
    code = status.HTTP_200_OK
    wanted = _range(request, headers, size)
    if wanted == "unsatisfiable":
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=status.HTTP_416_RANGE_NOT_SATISFIABLE, headers=headers)
    if isinstance(wanted, tuple):
        start, end = wanted
        code = status.HTTP_206_PARTIAL_CONTENT
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    if size == 0:
        return Response(b"", media_type=media_type, headers=headers)
    return StreamingResponse(
        store.iter_range(key, start, end), status_code=code, media_type=media_type,
        headers=headers,
    )  # fmt: skip


def _range(request: Request, headers: dict[str, str], size: int) -> tuple[int, int] | str | None:
    """The one byte range asked for, "unsatisfiable", or None for the whole file (no Range,
    several ranges, or an If-Range that no longer matches: RFC 9110 lets us send all)."""
    raw = request.headers.get("range")
    if not raw:
        return None
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != headers.get("ETag"):
        return None
    match = _RANGE.match(raw.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - count), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end
