"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: database and
broker reachable). Neither needs a key."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import QueueDep, SessionDep
from api.errors import UnavailableError
from api.schemas.common import problem_responses

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up. Async and dependency-free: it answers even when the
    thread pool is busy with uploads."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=problem_responses(503))
def readyz(session: SessionDep, queue: QueueDep) -> Health:
    failed = []
    try:
        session.execute(sa.text("SELECT 1"))
    except Exception:
        log.warning("readiness: database unreachable", exc_info=True)
        failed.append("database")
    try:
        queue.ping()
    except Exception:
        log.warning("readiness: broker unreachable", exc_info=True)
        failed.append("broker")
    if failed:
        raise UnavailableError(
            f"not ready: {' and '.join(failed)} unreachable",
            code="not_ready",
            errors=[{"component": name, "status": "unreachable"} for name in failed],
            headers={"Retry-After": "5"},
        )
    return Health(status="ready", checks={"database": "ok", "broker": "ok"})
