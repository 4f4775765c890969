"""Helpers every resource service uses: owner-scoped lookups and name checks."""

from __future__ import annotations

import uuid
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from api.db.base import Base
from api.errors import InvalidInputError, NotFoundError

T = TypeVar("T", bound=Base)

MAX_NAME_CHARS = 255


def get_owned(
    session: Session, model: type[T], *, owner_id: uuid.UUID, id: uuid.UUID, what: str
) -> T:
    """The row `id` if it belongs to `owner_id`; another owner's row is "not found" too."""
    row = session.get(model, id)
    if row is None or getattr(row, "owner_id", None) != owner_id:
        raise NotFoundError(f"{what} {id} not found")
    return row


def list_owned(session: Session, model: type[T], *, owner_id: uuid.UUID) -> list[T]:
    """All of `owner_id`'s rows of `model`, newest first (the id keeps ties in one order)."""
    cols = model.__table__.c
    return list(
        session.scalars(
            sa.select(model)
            .where(cols.owner_id == owner_id)
            .order_by(cols.created_at.desc(), cols.id)
        )
    )


def parse_uuid(value: str, *, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError as exc:
        raise InvalidInputError(
            f"form field `{field}` must be a UUID, got {value[:64]!r}",
            errors=[{"loc": ["body", field], "message": "not a UUID"}],
        ) from exc


def check_name(name: str | None, *, default: str) -> str:
    value = (name if name is not None else default).strip() or default
    if len(value) > MAX_NAME_CHARS:
        raise InvalidInputError(
            f"form field `name` is longer than {MAX_NAME_CHARS} characters",
            errors=[{"loc": ["body", "name"], "message": f"max {MAX_NAME_CHARS} characters"}],
        )
    return value[:MAX_NAME_CHARS]
