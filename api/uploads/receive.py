"""The flow the upload routes share: stream the multipart body to a temp file, then hand
it to the resource's service in a worker thread (validation blocks on a sandboxed child)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.requests import Request

from api.db.gate import DbGate
from api.errors import TooManyRequestsError
from api.limits import Limits
from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads.forms import UploadForm
from api.uploads.multipart import receive_upload
from api.uploads.reservation import UploadReservation

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class UploadReceiver:
    """An upload request with what its service needs (the dependency `api.deps.UploadDep`)."""

    request: Request
    owner_id: uuid.UUID
    gate: DbGate
    limits: Limits
    store: ArtifactStore
    settings: Settings

    async def create(
        self, create: Callable[..., T], form: UploadForm, *, max_file_bytes: int, **kwargs: Any
    ) -> T:
        """`create(session, owner_id=, upload=, store=, settings=, **kwargs)` on the
        received upload; the service takes ownership of its temp file."""
        # The upload slot is taken before a byte of the body is read (a full house answers
        # at once, not after the client sent gigabytes); its session checks out a
        # connection only when `create` runs, so streaming holds none.
        await self.limits.rate("uploads", self.owner_id)
        async with (
            self.limits.upload_slot(self.owner_id),
            self.gate.session(upload=True, timeout=0, when_busy=self._busy) as session,
        ):
            reservation = UploadReservation(self.gate, session, self.owner_id, self.settings.quotas)
            try:
                upload = await receive_upload(
                    self.request,
                    dest=self.store.temp_path(".upload"),
                    max_file_bytes=max_file_bytes,
                    what=form.what,
                    allowed_fields=form.field_names,
                    on_bytes=reservation.need,
                )
                upload = replace(upload, reservation_id=reservation.id)

                def run(session: Session) -> T:
                    return create(
                        session,
                        owner_id=self.owner_id,
                        upload=upload,
                        store=self.store,
                        settings=self.settings,
                        **kwargs,
                    )

                # Upload threads of their own: validation holds a sandbox child for minutes
                # and must not take the request path's threads.
                return await self.gate.in_thread(run, session, upload=True)
            finally:
                try:
                    await reservation.release()
                except Exception:
                    # The database is gone: the reservation lapses on its own.
                    log.warning("upload reservation not released; it lapses", exc_info=True)

    def _busy(self) -> Exception:
        # This process's upload connections are all in use (the limit store failed open,
        # or other processes' uploads are counted elsewhere).
        return TooManyRequestsError(
            f"{self.settings.uploads.max_concurrent_total} uploads are being processed; "
            "retry later",
            code="uploads_busy",
            headers={"Retry-After": str(self.settings.limits.upload_retry_after_seconds)},
        )
