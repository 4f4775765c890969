"""Worker heartbeats: each worker's main process records that it is alive, on the
sweeper's timer, in `worker_heartbeats` (read by the API's `/metrics`)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import WorkerHeartbeat, utcnow


def record_heartbeat(
    sessions: sessionmaker[Session], name: str, *, started_at: datetime, now: datetime | None = None
) -> None:
    """Upsert this worker's row; one conditional UPDATE, an INSERT the first time."""
    now = now or utcnow()
    with sessions() as session:
        updated = session.execute(
            sa.update(WorkerHeartbeat)
            .where(WorkerHeartbeat.name == name)
            .values(seen_at=now, started_at=started_at)
        )
        if updated.rowcount == 0:  # type: ignore[attr-defined]
            session.add(WorkerHeartbeat(name=name, started_at=started_at, seen_at=now))
        session.commit()
