"""`/ui`: log in with an API key, jobs with live progress, a job's stages, figures, verdict
and downloads, and the datasets, models and failure batches with their upload forms.

Pages read through the same services, with the same owner, as the JSON API: another
owner's id is a 404 page here as it is a 404 there. The page's script sends uploads,
repairs and cancels to the JSON API itself (`/v1/...`), with the session's CSRF token.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from api.auth import csrf_token
from api.auth_cache import AuthedOwner
from api.db.jobs import TERMINAL_STATUSES
from api.deps import (
    SESSION_COOKIE,
    GateDep,
    SessionDep,
    SettingsDep,
    StoreDep,
    authenticate,
    get_owner,
)
from api.errors import ConflictError, NotFoundError, UnauthorizedError
from api.services import datasets, failures, models, repairs
from api.storage import ArtifactStore
from repair_core import choices
from repair_core.evaluation.report import EvaluationReport
from repair_core.evaluation.verdict import verdict_lines

UI_PREFIX = "/ui"
STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)
# Where a figure sits on the job page, in this order.
FIGURE_ORDER = choices.FIGURE_NAMES


class LoginRequired(Exception):
    """No valid session: the page answers with a redirect to the login form."""


async def ui_owner(request: Request, settings: SettingsDep, gate: GateDep) -> AuthedOwner:
    try:
        return await get_owner(request, settings, gate, None)
    except UnauthorizedError as exc:
        raise LoginRequired from exc


OwnerDep = Annotated[AuthedOwner, Depends(ui_owner)]


def login_redirect(_request: Request, _exc: Exception) -> Response:
    response = RedirectResponse(f"{UI_PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def _page(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    key = request.cookies.get(SESSION_COOKIE, "")
    pepper = request.app.state.settings.auth_pepper
    return templates.TemplateResponse(
        request,
        name,
        {"csrf": csrf_token(pepper, key) if key else "", "prefix": UI_PREFIX, **context},
        status_code=status_code,
        headers={
            "Cache-Control": "no-store",
            # Nothing but this origin's own script, styles and images; no framing.
            "Content-Security-Policy": "default-src 'self'; img-src 'self'; "
            "frame-ancestors 'none'; form-action 'self'",
            "X-Frame-Options": "DENY",
        },
    )


def _not_found(request: Request, what: str) -> HTMLResponse:
    return _page(request, "not_found.html", {"what": what}, status_code=404)


# --- session ---------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _page(request, "login.html", {"error": None})


def _same_origin(request: Request) -> bool:
    """A login posted from another site (login CSRF) carries that site's Origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    settings: SettingsDep,
    gate: GateDep,
    key: Annotated[str, Form(max_length=256)],
) -> Response:
    key = key.strip()
    if not _same_origin(request):
        return _page(request, "login.html", {"error": "login from another site"}, status_code=403)
    try:
        await authenticate(request, settings, gate, key)
    except UnauthorizedError as exc:
        return _page(request, "login.html", {"error": exc.detail}, status_code=401)
    response = RedirectResponse(f"{UI_PREFIX}/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE, key, httponly=True, samesite="strict", path="/",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


@router.post("/logout")
def logout() -> Response:
    # Harmless to forge: logging someone out reveals and changes nothing of theirs.
    response = RedirectResponse(f"{UI_PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- jobs ------------------------------------------------------------------------------


def _job(view: repairs.RepairView) -> dict[str, Any]:
    job = view.job
    return {
        "id": str(job.id),
        "model_id": str(job.model_id),
        "status": job.status.value,
        "stage": job.stage,
        "progress": job.progress,
        "eta_seconds": job.eta_seconds,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "config": job.config,
        "timings": job.timings,
        "metrics": view.metrics,
        "error": job.error,
        "error_type": job.error_type,
        "figures": list(job.figures or []),
        "finished": job.status in TERMINAL_STATUSES,
        "succeeded": job.status.value == "succeeded",
        # Only the formats whose export passed its check have a file to download.
        "onnx": "onnx" in repairs.model_formats(job),
        # The other compared variants' models, by name.
        "variant_models": [
            v for v in repairs.variant_downloads(job) if v != repairs.primary_variant(job)
        ],
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


@router.get("/", response_class=HTMLResponse)
def jobs_page(request: Request, owner: OwnerDep, session: SessionDep) -> HTMLResponse:
    views, total = repairs.list_repairs(
        session, owner_id=owner.id, status=None, model_id=None, limit=100, offset=0
    )
    return _page(request, "jobs.html", {"jobs": [_job(v) for v in views], "total": total})


def _report(
    session: Session, store: ArtifactStore, owner_id: uuid.UUID, job_id: uuid.UUID
) -> dict[str, Any] | None:
    """The report's table and verdicts at its highest severity, for the job page."""
    try:
        key, _ = repairs.result_key(
            session, owner_id=owner_id, job_id=job_id, kind="report", store=store
        )
    except (ConflictError, NotFoundError):
        return None
    report = EvaluationReport.from_json(store.fetch(key).read_bytes())
    severity = max(report.severities) if report.severities else None
    columns = report.columns(severity)
    rows = [
        {"model": model, "cells": [col[model] for _, col in columns]} for model in report.models
    ]
    verdicts = [line for line in verdict_lines(report.verdicts(severity)) if line]
    return {
        "headers": [header for header, _ in columns],
        "rows": rows,
        "severity": severity,
        "verdicts": verdicts,
        "warnings": report.info.get("warnings", []),
    }


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    job_id: uuid.UUID, request: Request, owner: OwnerDep, session: SessionDep, store: StoreDep
) -> HTMLResponse:
    try:
        view = repairs.get_repair(session, owner_id=owner.id, job_id=job_id)
    except NotFoundError:
        return _not_found(request, f"repair job {job_id}")
    job = _job(view)
    have = set(job["figures"])
    figures = [name for name in FIGURE_ORDER if f"{name}.svg" in have or f"{name}.png" in have]
    context = {
        "job": job,
        "figures": figures,
        "report": _report(session, store, owner.id, job_id) if job["succeeded"] else None,
        "stage_timings": sorted(job["timings"].items(), key=lambda kv: kv[0]),
    }
    return _page(request, "job.html", context)


# --- uploads ---------------------------------------------------------------------------


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, owner: OwnerDep, session: SessionDep) -> HTMLResponse:
    rows = datasets.list_datasets(session, owner_id=owner.id)
    return _page(request, "datasets.html", {"datasets": rows})


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, owner: OwnerDep, session: SessionDep) -> HTMLResponse:
    rows = models.list_models(session, owner_id=owner.id)
    sets = datasets.list_datasets(session, owner_id=owner.id)
    return _page(request, "models.html", {"models": rows, "datasets": sets})


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(
    model_id: uuid.UUID, request: Request, owner: OwnerDep, session: SessionDep
) -> HTMLResponse:
    try:
        model = models.get_model(session, owner_id=owner.id, model_id=model_id)
    except NotFoundError:
        return _not_found(request, f"model {model_id}")
    batches = failures.list_failure_batches(session, owner_id=owner.id, model_id=model_id)
    views, _ = repairs.list_repairs(
        session, owner_id=owner.id, status=None, model_id=model_id, limit=100, offset=0
    )
    context = {
        "model": model,
        "batches": batches,
        "jobs": [_job(v) for v in views],
        "choices": {name: values for name, (values, _default) in choices.CHOICES.items()},
        "defaults": {name: default for name, (_values, default) in choices.CHOICES.items()},
    }
    return _page(request, "model.html", context)
