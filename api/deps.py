"""Typed dependencies: settings, a database session, the artifact store, the queue, the
authenticated owner (the one place the owner check lives), and an upload's receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.db.models import Owner
from api.errors import UnauthorizedError
from api.queue import JobQueue
from api.services import owners
from api.settings import Settings
from api.storage import ArtifactStore
from api.uploads.receive import UploadReceiver

_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="rk_<id>_<secret>",
    description="API key from `repairctl admin create-owner NAME`",
)


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


def get_queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]


def get_owner(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Owner:
    challenge = {"WWW-Authenticate": 'Bearer realm="repair"'}
    if credentials is None:
        raise UnauthorizedError(
            "missing API key: send `Authorization: Bearer <key>`", headers=challenge
        )
    owner = owners.authenticate(session, key=credentials.credentials, pepper=settings.auth_pepper)
    # End the read transaction: an upload handler must not hold a connection while the
    # body streams in.
    session.commit()
    if owner is None:
        raise UnauthorizedError("invalid, revoked or expired API key", headers=challenge)
    return owner


OwnerDep = Annotated[Owner, Depends(get_owner)]


def get_upload_receiver(
    request: Request, owner: OwnerDep, session: SessionDep, store: StoreDep, settings: SettingsDep
) -> UploadReceiver:
    return UploadReceiver(request, owner.id, session, store, settings)


UploadDep = Annotated[UploadReceiver, Depends(get_upload_receiver)]
