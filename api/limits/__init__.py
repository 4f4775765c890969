"""Fair limits (docs/upload-safety.md fault 12, docs/job-lifecycle.md fault 33): per-key
rates of job creation and uploads, a per-client rate of failed authentications, and caps
on concurrent uploads per owner and in total. Each answers 429 with `Retry-After` before
anything is stored.

State lives in Redis when the broker is Redis (so the limits hold across API processes),
else in this process's memory (the embedded default runs one process). A Redis error
fails open with a warning: the broker is down then too, and `/readyz` says so.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
from redis.exceptions import RedisError

from api.errors import TooManyRequestsError
from api.limits.gcra import Rate
from api.limits.memory import MemoryStore
from api.limits.redis import RedisStore
from api.settings import Settings

log = logging.getLogger(__name__)


class LimitStore(Protocol):
    async def hit(self, key: str, rate: Rate) -> float: ...
    async def peek(self, key: str, rate: Rate) -> float: ...
    async def acquire_slot(
        self, owner: uuid.UUID, *, per_owner: int, total: int, lease_seconds: float
    ) -> tuple[str | None, str]: ...
    async def renew_slot(self, owner: uuid.UUID, token: str, lease_seconds: float) -> None: ...
    async def release_slot(self, owner: uuid.UUID, token: str) -> None: ...
    async def close(self) -> None: ...


def make_store(settings: Settings) -> LimitStore:
    cfg = settings.limits
    url = cfg.redis_url or settings.broker.url
    backend = cfg.backend
    if backend == "auto":
        backend = "redis" if url.startswith(("redis://", "rediss://")) else "memory"
    if backend == "redis":
        return RedisStore(url, prefix=cfg.key_prefix)
    return MemoryStore()


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class Limits:
    def __init__(self, settings: Settings, store: LimitStore | None = None) -> None:
        cfg = settings.limits
        self.settings = settings
        self.store = store or make_store(settings)
        self.jobs = Rate(cfg.jobs_per_minute, cfg.jobs_burst)
        self.uploads = Rate(cfg.uploads_per_minute, cfg.uploads_burst)
        self.failed_auth = Rate(cfg.failed_auth_per_minute, cfg.failed_auth_burst)

    async def _wait(self, op: str, key: str, rate: Rate) -> float:
        try:
            if op == "peek":
                return await self.store.peek(key, rate)
            return await self.store.hit(key, rate)
        except (RedisError, OSError) as exc:
            # One line, no traceback: under overload this can fire on every request.
            log.warning("rate limit %s skipped: limit store unavailable (%r)", key, exc)
            return 0.0

    async def rate(self, kind: str, owner: uuid.UUID) -> None:
        """One `kind` ("jobs" or "uploads") request of `owner`'s key; 429 past its rate."""
        rate = self.jobs if kind == "jobs" else self.uploads
        wait = await self._wait("hit", f"rate:{kind}:{owner}", rate)
        if wait > 0:
            raise TooManyRequestsError(
                f"too many {'job creations' if kind == 'jobs' else 'uploads'}: at most "
                f"{rate.per_minute:g} a minute after a burst of {rate.burst}",
                code="rate_limited",
                headers=_retry_after(wait),
            )

    async def failed_auth_blocked(self, client: str) -> None:
        """429 while `client` has failed authentication too often (checked before the
        key, so a brute forcer learns nothing about its guesses meanwhile)."""
        wait = await self._wait("peek", f"authfail:{client}", self.failed_auth)
        if wait > 0:
            raise TooManyRequestsError(
                "too many failed authentications from this client",
                code="too_many_failed_auth",
                headers=_retry_after(wait),
            )

    async def record_failed_auth(self, client: str) -> None:
        await self._wait("hit", f"authfail:{client}", self.failed_auth)

    @asynccontextmanager
    async def upload_slot(self, owner: uuid.UUID) -> AsyncIterator[None]:
        """One of `owner`'s concurrent uploads (and one of everyone's), taken without
        waiting; renewed while held, so a crashed process frees it within one lease."""
        uploads = self.settings.uploads
        lease = self.settings.limits.slot_lease_seconds
        try:
            token, full = await self.store.acquire_slot(
                owner,
                per_owner=uploads.max_concurrent_per_owner,
                total=uploads.max_concurrent_total,
                lease_seconds=lease,
            )
        except (RedisError, OSError):
            log.warning("upload slot skipped: limit store unavailable", exc_info=True)
            yield
            return
        if token is None:
            retry = _retry_after(self.settings.limits.upload_retry_after_seconds)
            if full == "owner":
                raise TooManyRequestsError(
                    f"you have {uploads.max_concurrent_per_owner} uploads in progress; "
                    "wait for one to finish",
                    code="too_many_uploads",
                    headers=retry,
                )
            raise TooManyRequestsError(
                f"{uploads.max_concurrent_total} uploads are being processed; retry later",
                code="uploads_busy",
                headers=retry,
            )
        try:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._renew, owner, token, lease)
                    try:
                        yield
                    finally:
                        tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # The upload's own error (a 413, a 422), not a group: the problem mapper
                # must see it as raised.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await self.store.release_slot(owner, token)
                except (RedisError, OSError):
                    log.warning("upload slot release failed; its lease frees it", exc_info=True)

    async def _renew(self, owner: uuid.UUID, token: str, lease: float) -> None:
        while True:
            await anyio.sleep(lease / 3)
            try:
                await self.store.renew_slot(owner, token, lease)
            except (RedisError, OSError):
                log.warning("upload slot renewal failed", exc_info=True)

    async def close(self) -> None:
        await self.store.close()
