"""Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the request path
can get a database connection, the broker is reachable, and the upload sandbox is confined
where `sandbox.require_confinement` asks it to be). Neither needs a key."""

from __future__ import annotations

import logging
from typing import Literal

import anyio
import sqlalchemy as sa
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.db.gate import DatabaseBusy
from api.deps import GateDep, QueueDep, SettingsDep
from api.errors import UnavailableError
from api.schemas.common import problem_responses
from api.uploads.sandbox_probe import SandboxStatus, sandbox_status

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class SandboxReport(BaseModel):
    """The confinement upload children really get on this host."""

    user: str
    network: Literal["isolated", "shared"]
    confined: bool


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}
    sandbox: SandboxReport | None = None


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (a liveness probe). Async and dependency-free: it answers
    even when every thread and database slot is busy."""
    return Health(status="ok")


def _select_one(session: Session) -> None:
    session.execute(sa.text("SELECT 1"))


@router.get("/readyz", response_model=Health, responses=problem_responses(503))
async def readyz(gate: GateDep, queue: QueueDep, settings: SettingsDep) -> Health:
    """Ready to serve (a readiness probe): a request can get a database slot within
    `database.ready_timeout_seconds` and run a query, and the broker answers. It reports
    the upload sandbox's confinement, and fails while it is not confined when
    `sandbox.require_confinement` is set."""
    failed: dict[str, str] = {}
    try:
        await gate.run(_select_one, timeout=settings.database.ready_timeout_seconds)
    except DatabaseBusy:
        failed["database"] = "saturated"
    except Exception:
        log.warning("readiness: database unreachable", exc_info=True)
        failed["database"] = "unreachable"
    try:
        await anyio.to_thread.run_sync(queue.ping)
    except Exception:
        log.warning("readiness: broker unreachable", exc_info=True)
        failed["broker"] = "unreachable"
    sandbox = await anyio.to_thread.run_sync(sandbox_status, settings.sandbox)
    if settings.sandbox.require_confinement and not sandbox.confined:
        log.warning(
            "readiness: the upload sandbox is not confined (children run as %s, network %s): %s",
            sandbox.user,
            sandbox.network,
            "; ".join(sandbox.notes) or "no reason given",
        )
        failed["sandbox"] = "unconfined"
    if failed:
        raise UnavailableError(
            "not ready: " + " and ".join(f"{name} {why}" for name, why in failed.items()),
            code="not_ready",
            errors=[{"component": name, "status": why} for name, why in failed.items()],
            headers={"Retry-After": "5"},
        )
    checks = {"database": "ok", "broker": "ok"}
    if settings.sandbox.require_confinement:
        checks["sandbox"] = "ok"
    return Health(status="ready", checks=checks, sandbox=_report(sandbox))


def _report(status: SandboxStatus) -> SandboxReport:
    return SandboxReport(user=status.user, network=status.network, confined=status.confined)
