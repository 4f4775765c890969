"""An upload's bytes in flight, held against the owner's storage quota as they arrive.

Before the body is read the upload reserves its Content-Length; a chunked body reserves
`quotas.reservation_step_bytes` more each time it passes what it holds. Each step is one
short transaction under the owner lock (`api.services.quotas.reserve_storage`), so two
uploads of one owner, in any API process, cannot together pass the quota before either
finished: the second is refused with 413 `quota_exceeded` as soon as its bytes would not
fit, before they fill the disk. The reservation is renewed while the body streams and is
released when the upload ends, however it ends; a process that dies leaves a row that
stops counting when it lapses (`quotas.reservation_seconds`).
"""

from __future__ import annotations

import time
import uuid

import anyio
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.db.gate import DbGate
from api.services.quotas import release_storage, reserve_storage
from api.settings import QuotaSettings


class UploadReservation:
    def __init__(
        self, gate: DbGate, session: Session, owner_id: uuid.UUID, quotas: QuotaSettings
    ) -> None:
        self._gate = gate
        self._session = session
        self._owner_id = owner_id
        self._quotas = quotas
        self.id: uuid.UUID | None = None
        self.reserved = 0
        self._renewed_at = 0.0

    async def need(self, nbytes: int) -> None:
        """At least `nbytes` of the body are (or will be) stored: reserve more when they
        pass what is held, renew when a third of the lease has gone."""
        stale = time.monotonic() - self._renewed_at > self._quotas.reservation_seconds / 3
        if self.id is not None and nbytes <= self.reserved and not stale:
            return
        # A chunked body (first call: 0 bytes declared) grows in steps, not per chunk.
        growing = self.id is not None and nbytes > self.reserved
        headroom = self._quotas.reservation_step_bytes if growing else 0
        await self._reserve(max(nbytes, self.reserved), headroom)

    async def _reserve(self, total: int, headroom: int) -> None:
        def write(session: Session) -> tuple[uuid.UUID, int]:
            return reserve_storage(
                session, owner_id=self._owner_id, reservation_id=self.id, total_bytes=total,
                limit=self._quotas.storage_bytes, ttl_seconds=self._quotas.reservation_seconds,
                headroom_bytes=headroom,
            )  # fmt: skip

        self.id, self.reserved = await self._gate.in_thread(write, self._session, upload=True)
        self._renewed_at = time.monotonic()

    async def release(self) -> None:
        """Drop the reservation (a no-op once the upload's row took it over)."""
        if self.id is None:
            return
        reservation_id = self.id

        def drop(session: Session) -> None:
            # No rollback first when the transaction is usable: it would expire the rows the
            # upload returns (a replayed dataset is served after this).
            try:
                release_storage(session, reservation_id)
                session.commit()
            except SQLAlchemyError:
                session.rollback()  # the upload failed mid-transaction
                release_storage(session, reservation_id)
                session.commit()

        with anyio.CancelScope(shield=True):
            await self._gate.in_thread(drop, self._session, upload=True)
        self.id = None
