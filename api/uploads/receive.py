"""The flow the upload routes share: stream the multipart body to a temp file, then hand
it to the resource's service in a worker thread (validation blocks on a sandboxed child)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads.multipart import receive_upload

T = TypeVar("T")


async def receive_and_create(
    request: Request,
    create: Callable[..., T],
    *,
    session: Session,
    owner_id: uuid.UUID,
    store: ArtifactStore,
    settings: Settings,
    max_file_bytes: int,
    what: str,
    allowed_fields: frozenset[str],
    **service_kwargs: Any,
) -> T:
    """`create(session, owner_id=, upload=, store=, settings=, **service_kwargs)` on the
    received upload; the service takes ownership of its temp file."""
    upload = await receive_upload(
        request,
        dest=store.temp_path(".upload"),
        max_file_bytes=max_file_bytes,
        what=what,
        allowed_fields=allowed_fields,
    )
    return await run_in_threadpool(
        create,
        session,
        owner_id=owner_id,
        upload=upload,
        store=store,
        settings=settings,
        **service_kwargs,
    )
