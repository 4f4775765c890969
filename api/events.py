"""Job events as Server-Sent Events: `GET /v1/repairs/{id}/events`.

Each stream reads its job's row (one primary-key read through the gate, holding no
session between reads) every `events.poll_seconds`; a changed version is sent as
`event: stage` (stage or status changed) or `event: progress`, with `id:` the version so
a reconnect with `Last-Event-ID` resumes. A finished job ends the stream with
`event: end` carrying the full job. Ownership and the stream caps are checked in the
dependency, before the 200 starts, so they answer 404 / 429 like any route.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import sqlalchemy as sa
from fastapi import Depends, Header, Request
from fastapi.sse import ServerSentEvent
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.db.gate import DatabaseBusy, DbGate
from api.db.jobs import TERMINAL_STATUSES
from api.db.models import RepairJob
from api.deps import GateDep, OwnerDep, SettingsDep
from api.errors import NotFoundError, TooManyRequestsError
from api.settings import EventSettings

log = logging.getLogger(__name__)

RETRY_MS = 2000
_COLUMNS = (
    RepairJob.version, RepairJob.status, RepairJob.stage, RepairJob.progress, RepairJob.step,
    RepairJob.total, RepairJob.eta_seconds, RepairJob.metrics, RepairJob.attempts,
    RepairJob.error, RepairJob.error_type, RepairJob.updated_at,
)  # fmt: skip


def read_snapshot(session: Session, *, owner_id: uuid.UUID, job_id: uuid.UUID) -> dict[str, Any]:
    row = session.execute(
        sa.select(*_COLUMNS).where(RepairJob.id == job_id, RepairJob.owner_id == owner_id)
    ).first()
    if row is None:
        raise NotFoundError(f"repair job {job_id} not found")
    snap = dict(row._mapping)
    snap["status"] = snap["status"].value
    snap["updated_at"] = snap["updated_at"].isoformat() if snap["updated_at"] else None
    return {"id": str(job_id), **snap}


class StreamCounter:
    """Open streams of this process, per owner and in all."""

    def __init__(self) -> None:
        self.by_owner: Counter[uuid.UUID] = Counter()
        self.total = 0


@dataclass
class JobStream:
    job_id: uuid.UUID
    owner_id: uuid.UUID
    first: dict[str, Any]
    last_event_id: str | None
    gate: DbGate
    settings: EventSettings
    counter: StreamCounter

    async def events(
        self, final: Callable[[Session], dict[str, Any]]
    ) -> AsyncIterator[ServerSentEvent]:
        # Counted while the generator runs (a disconnect cancels it): the check in
        # `check_job_stream` and this count are not atomic, so the cap may be passed by
        # the few streams opened in the same instant.
        self.counter.by_owner[self.owner_id] += 1
        self.counter.total += 1
        try:
            async for event in self._events(final):
                yield event
        finally:
            self.counter.by_owner[self.owner_id] -= 1
            self.counter.total -= 1

    async def _events(
        self, final: Callable[[Session], dict[str, Any]]
    ) -> AsyncIterator[ServerSentEvent]:
        last = self.first
        if self.last_event_id != str(last["version"]):
            yield ServerSentEvent(event="stage", id=str(last["version"]), data=last, retry=RETRY_MS)
        with anyio.move_on_after(self.settings.max_stream_seconds):
            while last["status"] not in _TERMINAL:
                await anyio.sleep(self.settings.poll_seconds)
                try:
                    snap = await self.gate.run(self._read, read_only=True)
                except (DatabaseBusy, SQLAlchemyError):
                    log.info("event stream of %s skipped a read: database busy", self.job_id)
                    continue
                if snap["version"] == last["version"]:
                    continue
                moved = (snap["stage"], snap["status"]) != (last["stage"], last["status"])
                last = snap
                yield ServerSentEvent(
                    event="stage" if moved else "progress", id=str(snap["version"]), data=snap
                )
            else:
                job = await self.gate.run(final, read_only=True)
                yield ServerSentEvent(event="end", id=str(last["version"]), data=job)
        # Past max_stream_seconds the stream ends; the client reconnects with Last-Event-ID.

    def _read(self, session: Session) -> dict[str, Any]:
        return read_snapshot(session, owner_id=self.owner_id, job_id=self.job_id)


_TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)


async def check_job_stream(
    job_id: uuid.UUID,
    request: Request,
    owner: OwnerDep,
    gate: GateDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> JobStream:
    """Ownership (404) and the stream caps (429), before the 200 starts."""
    cfg = settings.events
    counter: StreamCounter = request.app.state.streams
    if counter.by_owner[owner.id] >= cfg.max_streams_per_owner or counter.total >= cfg.max_streams:
        raise TooManyRequestsError(
            "too many open event streams; close one or poll with If-None-Match",
            code="too_many_streams",
            headers={"Retry-After": "30"},
        )
    first = await gate.run(
        lambda s: read_snapshot(s, owner_id=owner.id, job_id=job_id), read_only=True
    )
    return JobStream(job_id, owner.id, first, last_event_id, gate, cfg, counter)


JobStreamDep = Annotated[JobStream, Depends(check_job_stream)]
