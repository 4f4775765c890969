"""Domain errors the service layer raises; `api/problems.py` maps them to HTTP in one place.

Messages say what is wrong and where (field, file name, limit), because they reach the
client verbatim as the `detail` of a problem document.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class ServiceError(Exception):
    """Base of the errors a client can act on. `code` is stable and machine-readable."""

    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: Sequence[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.errors = list(errors)
        self.headers = dict(headers or {})


class BadRequestError(ServiceError):
    code = "bad_request"


class UnauthorizedError(ServiceError):
    code = "unauthorized"


class ForbiddenError(ServiceError):
    code = "forbidden"


class NotFoundError(ServiceError):
    code = "not_found"


class ConflictError(ServiceError):
    code = "conflict"


class PayloadTooLargeError(ServiceError):
    code = "payload_too_large"


class QuotaExceededError(PayloadTooLargeError):
    code = "quota_exceeded"


class InsufficientStorageError(ServiceError):
    """The server's disk is full: nothing was stored, the client may retry later (507)."""

    code = "insufficient_storage"


class TooManyRequestsError(ServiceError):
    code = "too_many_requests"


class UnsupportedMediaTypeError(ServiceError):
    code = "unsupported_media_type"


class InvalidInputError(ServiceError):
    code = "invalid_input"


class UnavailableError(ServiceError):
    code = "unavailable"
