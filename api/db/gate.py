"""The database gate: a request gets a slot before it may check out a connection.

Why (docs/api-under-load.md): a request that holds a pooled connection while it waits
for a worker thread, and threads that block in the pool checkout, wait on each other;
under overload every thread ends up parked in the checkout and the API wedges. The gate
orders the two resources: a slot is awaited asynchronously (holding no thread), there are
never more slots than pool connections, so a checkout never waits and every thread that
runs finishes. The wait for a slot is bounded; past it the answer is a fast 503
`database_busy` with `Retry-After`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import anyio
from sqlalchemy.orm import Session, sessionmaker

from api.errors import UnavailableError

T = TypeVar("T")

_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


class DatabaseBusy(UnavailableError):
    code = "database_busy"


class DbGate:
    """Slots in front of one engine's pool: `request_slots` for ordinary requests,
    `upload_slots` for upload commits (their validation takes minutes in a sandbox child
    and must not starve polls). The pool must hold at least both together."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        request_slots: int,
        upload_slots: int,
        acquire_timeout: float,
        max_waiting: int,
        retry_after: int,
    ) -> None:
        self._factory = session_factory
        self.request_slots = request_slots
        self.upload_slots = upload_slots
        self.acquire_timeout = acquire_timeout
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        # AnyIO primitives bind to the running event loop: built on first use.
        self._requests: anyio.Semaphore | None = None
        self._uploads: anyio.Semaphore | None = None
        self._closer: anyio.CapacityLimiter | None = None
        self._upload_threads: anyio.CapacityLimiter | None = None

    def _ready(self) -> None:
        if self._requests is None:
            self._requests = anyio.Semaphore(self.request_slots)
            self._uploads = anyio.Semaphore(max(1, self.upload_slots))
            self._closer = anyio.CapacityLimiter(self.request_slots + max(1, self.upload_slots))
            self._upload_threads = anyio.CapacityLimiter(max(1, self.upload_slots))

    def _busy(self, why: str) -> DatabaseBusy:
        return DatabaseBusy(
            f"the database is busy ({why}); retry shortly",
            headers={"Retry-After": str(self.retry_after)},
        )

    @asynccontextmanager
    async def _slot(
        self,
        *,
        upload: bool,
        timeout: float | None,
        when_busy: Callable[[], Exception] | None = None,
    ) -> AsyncIterator[None]:
        """Hold a request (or upload) slot; waits at most the timeout, then `when_busy()`."""
        self._ready()
        sem = self._uploads if upload else self._requests
        assert sem is not None
        try:
            sem.acquire_nowait()
        except anyio.WouldBlock:
            busy = when_busy or (lambda: self._busy("no slot free in time"))
            if timeout == 0 or sem.statistics().tasks_waiting >= self.max_waiting:
                raise busy() from None
            try:
                with anyio.fail_after(self.acquire_timeout if timeout is None else timeout):
                    await sem.acquire()
            except TimeoutError:
                raise busy() from None
        try:
            yield
        finally:
            sem.release()

    @asynccontextmanager
    async def session(
        self,
        *,
        upload: bool = False,
        timeout: float | None = None,
        when_busy: Callable[[], Exception] | None = None,
    ) -> AsyncIterator[Session]:
        """A session that may check out a connection without waiting; closed (in a
        thread, shielded from cancellation) before the slot is given back. The session
        checks out a connection only at its first query, so holding one idle costs a slot,
        not a connection. `timeout=0`: take a free slot or fail at once (`when_busy()`)."""
        async with self._slot(upload=upload, timeout=timeout, when_busy=when_busy):
            assert self._closer is not None
            session = self._factory()
            try:
                yield session
            finally:
                # close() rolls back: I/O, so not on the loop; shielded so a disconnect
                # cannot skip it and leak the slot's connection.
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(session.close, limiter=self._closer)

    async def run(
        self,
        fn: Callable[[Session], T],
        *,
        upload: bool = False,
        timeout: float | None = None,
        read_only: bool = False,
    ) -> T:
        """`fn(session)` under a slot, with the session opened and closed in the same
        worker thread: one thread hop per call (a hop costs about as much CPU as a query,
        and every status poll makes this call). A cancelled caller still waits for the
        thread (AnyIO does not abandon it), so the close always runs before the slot is
        given back.

        `read_only`: the session's connection is in autocommit, so a read sends only its
        queries, without the BEGIN before and the ROLLBACK after (two of a status poll's
        four round trips on Postgres; the pool's pre-ping and the query are the others).
        Each query then sees its own snapshot: for reads whose later queries only add to
        what the first one saw."""

        def call(session_fn: Callable[[Session], T]) -> T:
            with self._factory() as session:
                if read_only:
                    session.connection(execution_options=_AUTOCOMMIT)
                return session_fn(session)

        async with self._slot(upload=upload, timeout=timeout):
            limiter = self._upload_threads if upload else None
            return await anyio.to_thread.run_sync(call, fn, limiter=limiter)

    async def in_thread(self, fn: Callable[[Session], T], session: Session, *, upload: bool) -> T:
        """`fn(session)` in a worker thread; uploads use threads of their own."""
        self._ready()
        limiter = self._upload_threads if upload else None
        return await anyio.to_thread.run_sync(fn, session, limiter=limiter)

    def stats(self) -> dict[str, int]:
        self._ready()
        assert self._requests is not None and self._uploads is not None
        return {
            "request_slots_free": self._requests.value,
            "request_waiting": self._requests.statistics().tasks_waiting,
            "upload_slots_free": self._uploads.value,
            "upload_waiting": self._uploads.statistics().tasks_waiting,
        }
