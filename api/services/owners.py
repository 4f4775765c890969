"""Owners and their API keys: create one (admin), authenticate a request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api import auth
from api.auth_cache import AuthedOwner, KeyGrant
from api.db.models import ApiKey, Owner
from api.errors import ConflictError, InvalidInputError

INVALID_KEY = "invalid API key"


@dataclass(frozen=True)
class CreatedOwner:
    owner_id: uuid.UUID
    name: str
    api_key: str  # shown once; only its digest is stored


def create_owner(
    session: Session, *, name: str, pepper: str, expires_at: datetime | None = None
) -> CreatedOwner:
    name = name.strip()
    if not 1 <= len(name) <= 128:
        raise InvalidInputError("owner name must be 1 to 128 characters")
    owner = Owner(name=name)
    session.add(owner)
    try:
        session.flush()
    except IntegrityError as exc:
        session.rollback()
        raise ConflictError(f"an owner named {name!r} exists already") from exc
    key = create_api_key(session, owner_id=owner.id, pepper=pepper, expires_at=expires_at)
    session.commit()
    return CreatedOwner(owner.id, owner.name, key)


def create_api_key(
    session: Session, *, owner_id: uuid.UUID, pepper: str, expires_at: datetime | None = None
) -> str:
    """Add a key for `owner_id` (the caller commits) and return it in clear, once. From
    `expires_at` on (if given) the key is refused with 401."""
    new = auth.generate_key()
    session.add(
        ApiKey(
            owner_id=owner_id,
            key_id=new.key_id,
            digest=auth.key_digest(pepper, new.key),
            expires_at=expires_at,
        )
    )
    session.flush()
    return new.key


def check_key(session: Session, *, key: str, pepper: str) -> KeyGrant | str:
    """The owner holding `key` and until when the key is valid, or why it is refused:
    malformed and unknown keys alike are "invalid"; only the holder of the real key (its
    digest matched) learns that it was revoked or expired, and when."""
    key_id = auth.parse_key_id(key)
    if key_id is None:
        return INVALID_KEY
    row = session.execute(
        sa.select(ApiKey, Owner)
        .join(Owner, Owner.id == ApiKey.owner_id)
        .where(ApiKey.key_id == key_id)
    ).first()
    if row is None:
        # Same work as a hit, so timing does not tell which ids exist.
        auth.digest_matches(pepper, key, "0" * 64)
        return INVALID_KEY
    api_key, owner = row
    if not auth.digest_matches(pepper, key, api_key.digest):
        return INVALID_KEY
    now = datetime.now(UTC)
    if api_key.revoked_at is not None and api_key.revoked_at <= now:
        return f"API key revoked at {api_key.revoked_at.isoformat(timespec='seconds')}"
    if api_key.expires_at is not None and api_key.expires_at <= now:
        return (
            f"API key expired at {api_key.expires_at.isoformat(timespec='seconds')}; "
            "ask an operator for a new one"
        )
    ends = [t for t in (api_key.expires_at, api_key.revoked_at) if t is not None]
    return KeyGrant(AuthedOwner(owner.id, api_key.key_id), min(ends) if ends else None)


def revoke_key(session: Session, *, key_id: str) -> bool:
    """Revoke the key `key_id` now (the caller commits); False when there is none. API
    processes refuse it within `auth.cache_seconds` (api/auth_cache.py)."""
    result = session.execute(
        sa.update(ApiKey)
        .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return bool(getattr(result, "rowcount", 0))
