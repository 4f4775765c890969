"""The flow the upload routes share: stream the multipart body to a temp file, then hand
it to the resource's service in a worker thread (validation blocks on a sandboxed child)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads.forms import UploadForm
from api.uploads.multipart import receive_upload

T = TypeVar("T")


@dataclass(frozen=True)
class UploadReceiver:
    """An upload request with what its service needs (the dependency `api.deps.UploadDep`)."""

    request: Request
    owner_id: uuid.UUID
    session: Session
    store: ArtifactStore
    settings: Settings

    async def create(
        self, create: Callable[..., T], form: UploadForm, *, max_file_bytes: int, **kwargs: Any
    ) -> T:
        """`create(session, owner_id=, upload=, store=, settings=, **kwargs)` on the
        received upload; the service takes ownership of its temp file."""
        upload = await receive_upload(
            self.request,
            dest=self.store.temp_path(".upload"),
            max_file_bytes=max_file_bytes,
            what=form.what,
            allowed_fields=form.field_names,
        )
        return await run_in_threadpool(
            create,
            self.session,
            owner_id=self.owner_id,
            upload=upload,
            store=self.store,
            settings=self.settings,
            **kwargs,
        )
