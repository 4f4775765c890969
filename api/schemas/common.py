"""Schemas shared by every resource: the problem document and the list envelope."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An RFC 9457 problem document: the body of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "type": "/problems/upload_too_large",
                    "title": "Content Too Large",
                    "status": 413,
                    "detail": "dataset archive is larger than the limit of 21474836480 bytes",
                    "code": "upload_too_large",
                    "errors": [{"limit": "max_bytes", "value": 21474836480}],
                }
            ]
        }
    )

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] = Field(default_factory=list)


class Rejected(BaseModel):
    """A file of an upload that was not accepted, and why."""

    file: str
    reason: str


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the given error statuses, all problem documents.

    `api.app` moves their schema to `application/problem+json`, the media type the
    handlers send. 422 is always listed: it replaces FastAPI's default validation-error
    schema, which our problem documents do not follow.
    """
    descriptions = {
        400: "Malformed request",
        401: "Missing or invalid API key",
        404: "No such resource for this owner",
        409: "Conflicts with the resource's current state",
        413: "Upload over its size limit or the owner's storage quota",
        415: "Wrong content type or file kind",
        422: "Well-formed but invalid input",
        429: "A rate limit or concurrency cap was reached; see Retry-After",
        503: "Database or broker unavailable",
        507: "The server's disk is full; nothing was stored, retry later",
    }
    return {
        s: {
            "model": Problem,
            "description": descriptions.get(s, "Error"),
        }
        for s in sorted({*statuses, 422})
    }
