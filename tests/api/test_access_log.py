"""uvicorn's access log keeps query parameter names, never their values (a key sent in
the query string is refused and must not be logged either). The whole path, with real
processes, is `tests/worker/test_log_secrets.py`."""

from __future__ import annotations

import logging

import pytest

from api.access_log import QueryValueRedaction, redact_access_log, redact_query


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/v1/datasets", "/v1/datasets"),
        ("/v1/datasets?api_key=rk_abcdefgh_s3cret", "/v1/datasets?api_key=REDACTED"),
        ("/v1/x?a=1&token=s3cret&empty=", "/v1/x?a=REDACTED&token=REDACTED&empty=REDACTED"),
        ("/v1/x?rk_abcdefgh_s3cret", "/v1/x?REDACTED"),
        ("/v1/x?n=1&rk_abcdefgh_s3cret", "/v1/x?n=REDACTED&REDACTED"),
    ],
)
def test_query_values_are_cut_from_the_logged_path(path: str, logged: str) -> None:
    assert redact_query(path) == logged


def test_the_access_log_record_is_rewritten_before_any_handler_formats_it() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/jobs?api_key=rk_abcdefgh_s3cret", "1.1", 401), None,
    )  # fmt: skip
    assert QueryValueRedaction().filter(record)
    assert "s3cret" not in record.getMessage() and "api_key=REDACTED" in record.getMessage()
    redact_access_log()
    redact_access_log()
    filters = logging.getLogger("uvicorn.access").filters
    assert sum(isinstance(f, QueryValueRedaction) for f in filters) == 1
