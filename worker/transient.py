"""Which errors are transient (infrastructure that comes back), and retrying them.

Only these are retried: a bug, an out-of-memory or bad input fails the job at once
(never `autoretry_for=(Exception,)`; docs/job-lifecycle.md, "Celery settings of a
worker").
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import botocore.exceptions
import kombu.exceptions
import redis.exceptions
import sqlalchemy.exc

log = logging.getLogger(__name__)

T = TypeVar("T")

# Database unreachable or restarting, SQLite busy, broker connection lost, S3 store
# unreachable (after botocore's own retries; a refusal such as AccessDenied is not transient).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_ERRORS)


def retry_transient(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int = 8,
    first_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`fn()`, called again with exponential backoff (and jitter) while it raises a
    transient error; the last error propagates after `attempts` calls. With the
    defaults that is about two minutes of outage."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TRANSIENT_ERRORS as exc:
            if attempt == attempts:
                raise
            pause = min(delay, max_delay) * random.uniform(0.8, 1.2)  # jitter, not security
            log.warning(
                "%s failed (%s: %s); retry %d/%d in %.1f s",
                what, type(exc).__name__, exc, attempt, attempts - 1, pause,
            )  # fmt: skip
            sleep(pause)
            delay *= 2
    raise AssertionError("unreachable")
