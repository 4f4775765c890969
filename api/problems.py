"""RFC 9457 problem details: the one JSON shape of every error response, and its mapper.

`{"type", "title", "status", "detail", "code", "errors": [...]}` with media type
`application/problem+json`. Every exception class the app can meet is mapped here and
nowhere else; an unreachable database answers 503, never 500.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from api import errors
from api.storage.errors import STORE_ERRORS

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "/problems/"

STATUS_OF: Mapping[type[errors.ServiceError], int] = {
    errors.BadRequestError: 400,
    errors.UnauthorizedError: 401,
    errors.ForbiddenError: 403,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.PayloadTooLargeError: 413,
    errors.UnsupportedMediaTypeError: 415,
    errors.InvalidInputError: 422,
    errors.TooManyRequestsError: 429,
    errors.UnavailableError: 503,
    errors.InsufficientStorageError: 507,
}

# The code of a bare status (e.g. a routing 404 or 405): the service error's, where one
# maps to that status, so both spell it the same.
_CODE_OF_STATUS = {
    405: "method_not_allowed",
    406: "not_acceptable",
    **{status: cls.code for cls, status in STATUS_OF.items()},
}


def problem_response(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors_: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    code = code or _CODE_OF_STATUS.get(status, "error")
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": _title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [dict(e) for e in errors_],
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _status_of(exc: errors.ServiceError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 400


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ServiceError)
    return problem_response(
        _status_of(exc), exc.detail, code=exc.code, errors_=exc.errors, headers=exc.headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = []
    for err in exc.errors():
        # The offending input is not echoed back: it can be large or binary.
        loc = [str(part) for part in err.get("loc", ())]
        items.append({"loc": loc, "message": str(err.get("msg", "")), "type": err.get("type")})
    first = items[0] if items else {"loc": [], "message": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    detail = f"invalid {where}: {first['message']}"
    if len(items) > 1:
        detail += f" (and {len(items) - 1} more)"
    return problem_response(422, detail, code="validation_error", errors_=items)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
    if exc.status_code == 404 and detail == "Not Found":
        detail = "no such resource or route"
    return problem_response(exc.status_code, detail, headers=exc.headers)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable: %s", type(exc).__name__)
    return problem_response(
        503,
        "the database is unavailable; retry shortly",
        code="database_unavailable",
        headers={"Retry-After": "5"},
    )


async def _db_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, sa_exc.DBAPIError)
    if exc.connection_invalidated or isinstance(
        exc, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return await _database_unavailable(request, exc)
    return await _unexpected(request, exc)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The S3 store refused or could not be reached; nothing half-done is left (an object
    # appears only when its upload completes, and rows are committed after).
    log.warning("artifact store unavailable on %s %s", request.method, request.url.path,
                exc_info=exc)  # fmt: skip
    return problem_response(
        503,
        "the artifact store is unavailable; retry shortly",
        code="storage_unavailable",
        headers={"Retry-After": "5"},
    )


async def _stale(_request: Request, _exc: Exception) -> JSONResponse:
    return problem_response(
        409, "the resource changed while this request ran; retry it", code="concurrent_update"
    )


async def _disconnect(_request: Request, _exc: Exception) -> JSONResponse:
    # The client is gone; this response is never read, it only ends the request cleanly.
    return problem_response(400, "client disconnected during the request", code="disconnected")


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OSError)
    if is_disk_full(exc):
        # Wherever the disk filled (a temp file, a publish, a folder), the flow that hit it
        # has removed what it wrote; the path is not echoed (it is the server's).
        log.warning("disk full on %s %s", request.method, request.url.path)
        return problem_response(
            507,
            "the server ran out of disk space; nothing was stored, retry later",
            code="insufficient_storage",
        )
    return await _unexpected(request, exc)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal error; it has been logged", code="internal_error")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_unavailable)
    app.add_exception_handler(sa_exc.DBAPIError, _db_error)
    app.add_exception_handler(StaleDataError, _stale)
    app.add_exception_handler(ClientDisconnect, _disconnect)
    app.add_exception_handler(OSError, _os_error)
    for store_error in STORE_ERRORS:
        app.add_exception_handler(store_error, _store_unavailable)
    app.add_exception_handler(Exception, _unexpected)
