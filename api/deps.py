"""Typed dependencies: settings, a database session, the artifact store, the queue, the
authenticated owner (the one place the owner check lives), and an upload's receiver.

Every database session comes from the gate (`api/db/gate.py`): a request holds a slot,
awaited without a thread, before it may check out a connection, so the API cannot wedge.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from api.auth import csrf_token, key_digest
from api.auth_cache import AuthCache, AuthedOwner, KeyGrant
from api.db.gate import DbGate
from api.errors import ForbiddenError, UnauthorizedError
from api.limits import Limits
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


# The accessors below are `async` although they only read `app.state`: FastAPI runs a
# sync dependency in a worker thread, a thread hop per dependency per request.
async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_gate(request: Request) -> DbGate:
    gate: DbGate = request.app.state.gate
    return gate


async def get_db(request: Request) -> AsyncIterator[Session]:
    gate: DbGate = request.app.state.gate
    async with gate.session() as session:
        yield session


async def get_limits(request: Request) -> Limits:
    limits: Limits = request.app.state.limits
    return limits


async def get_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


async def get_queue(request: Request) -> JobQueue:
    queue: JobQueue = request.app.state.queue
    return queue


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
GateDep = Annotated[DbGate, Depends(get_gate)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
# scope="function": the session (and its slot) is closed once the handler has returned,
# before the body is sent, so a download never holds a connection while it streams.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]


# The dashboard's session: the API key in an HttpOnly, SameSite=Strict cookie (api/ui).
SESSION_COOKIE = "repair_key"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def authenticate(request: Request, settings: Settings, gate: DbGate, key: str) -> AuthedOwner:
    """The owner of `key`, from the auth cache or the database; 401 otherwise."""
    challenge = {"WWW-Authenticate": 'Bearer realm="repair"'}
    cache: AuthCache = request.app.state.auth_cache
    digest = key_digest(settings.auth_pepper, key)
    owner = cache.get(digest)
    if owner is not None:
        # A key that checked out moments ago: nothing to guess here, no limit lookup.
        return owner
    limits: Limits = request.app.state.limits
    client = request.client.host if request.client else "unknown"
    # Before the key is checked, so a blocked brute forcer learns nothing from its guesses.
    await limits.failed_auth_blocked(client)

    def check(session: Session) -> KeyGrant | str:
        return owners.check_key(session, key=key, pepper=settings.auth_pepper)

    # A slot of its own, given back before the route's session takes one: a request never
    # holds one slot while it waits for another.
    grant = await gate.run(check)
    if not isinstance(grant, KeyGrant):
        await limits.record_failed_auth(client)
        raise UnauthorizedError(grant, headers=challenge)
    cache.put(digest, grant)
    return grant.owner


async def get_owner(
    request: Request,
    settings: SettingsDep,
    gate: GateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthedOwner:
    """The caller: by `Authorization: Bearer <key>`, or by the dashboard's session cookie,
    whose unsafe requests must also send the session's CSRF token (a cross-site page can
    neither read the token nor set the header)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    key = credentials.credentials if credentials is not None else cookie
    if not key:
        raise UnauthorizedError(
            "missing API key: send `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": 'Bearer realm="repair"'},
        )
    owner = await authenticate(request, settings, gate, key)
    if credentials is None and request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token(settings.auth_pepper, key).encode()):
            raise ForbiddenError(
                f"a request authenticated by the dashboard's cookie needs the {CSRF_HEADER} "
                "header of its session",
                code="csrf_failed",
            )
    return owner


OwnerDep = Annotated[AuthedOwner, Depends(get_owner)]


async def get_upload_receiver(
    request: Request,
    owner: OwnerDep,
    gate: GateDep,
    limits: LimitsDep,
    store: StoreDep,
    settings: SettingsDep,
) -> UploadReceiver:
    # No session here: one would hold a slot while the body streams in.
    return UploadReceiver(request, owner.id, gate, limits, store, settings)


async def limit_job_creation(owner: OwnerDep, limits: LimitsDep) -> None:
    await limits.rate("jobs", owner.id)


UploadDep = Annotated[UploadReceiver, Depends(get_upload_receiver)]
