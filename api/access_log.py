"""What uvicorn's access log says about a request: its path and the names of its query
parameters, never their values.

A client may put its API key in the query string (`?api_key=...`): the API refuses it
(401, keys travel only in the Authorization header), but uvicorn logs the request line
first, and logs are read by more people than keys should be. Values are cut for every
parameter, since any name can carry a secret.
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "REDACTED"


class QueryValueRedaction(logging.Filter):
    """Rewrites the path of an access-log record (uvicorn's arguments: client, method,
    path with query, HTTP version, status) with every query value replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_query(args[2]), *args[3:])
        return True


def redact_query(path: str) -> str:
    """`/v1/x?api_key=rk_...&n=2` -> `/v1/x?api_key=REDACTED&n=REDACTED`; a part with no
    `=` (`?rk_...`) is a value, not a name, and is cut whole."""
    base, sep, query = path.partition("?")
    if not sep:
        return path
    parts = (part.partition("=") for part in query.split("&"))
    return f"{base}?" + "&".join(
        f"{name}={REDACTED}" if equals else REDACTED for name, equals, _ in parts
    )


def redact_access_log() -> None:
    """Install the redaction on uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, QueryValueRedaction) for f in logger.filters):
        logger.addFilter(QueryValueRedaction())
