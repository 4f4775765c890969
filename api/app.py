"""The FastAPI application factory: settings, database, artifact store and queue in,
one router per resource, one error mapper. `uvicorn api.app:create_app --factory`."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access_log import redact_access_log
from api.auth_cache import AuthCache
from api.db.gate import DbGate
from api.db.session import make_engine, make_session_factory
from api.errors import PayloadTooLargeError
from api.events import StreamCounter
from api.limits import Limits
from api.metrics.process import MetricsMiddleware, ProcessMetrics
from api.problems import install_problem_handlers, problem_response
from api.queue import CeleryJobQueue, JobQueue
from api.routes import datasets, failures, health, metrics, models, repairs
from api.services.upkeep import run_upkeep
from api.settings import Settings, check_secrets, get_settings
from api.storage import open_store
from api.storage.errors import STORE_ERRORS
from api.ui import routes as ui_routes
from api.uploads.sandbox_plan import log_sandbox_plan

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
# Routes that stream their own (large, capped per kind) bodies.
_UPLOAD_ROUTE = re.compile(r"^/v1/(datasets|models|models/[^/]+/failure-batches)/?$")

DESCRIPTION = """\
Repairs deployed image classifiers with CF-DARTS (core-failure-set guided DARTS).

Upload your clean dataset once, then a model and batches of field images it gets wrong;
create a repair job, watch its progress, download the repaired checkpoint and report.
Authenticate with `Authorization: Bearer <key>` (from `repairctl admin create-owner`).
Errors are RFC 9457 problem documents (`application/problem+json`).
"""


class BodyLimitMiddleware:
    """Caps request bodies of every non-upload route (JSON bodies) at `max_bytes`:
    by Content-Length before reading, and by counting for chunked bodies."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "POST" and _UPLOAD_ROUTE.match(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            too_large = declared.isdigit()
            response = problem_response(
                413 if too_large else 400,
                f"request body is larger than the limit of {self.max_bytes} bytes"
                if too_large
                else "invalid Content-Length header",
                code="body_too_large" if too_large else "bad_header",
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLargeError(
                        f"request body is larger than the limit of {self.max_bytes} bytes",
                        code="body_too_large",
                    )
            return message

        await self.app(scope, counting_receive, send)


def create_app(settings: Settings | None = None, queue: JobQueue | None = None) -> FastAPI:
    settings = settings or get_settings()
    check_secrets(settings)
    redact_access_log()
    db = settings.database
    upload_slots = settings.uploads.max_concurrent_total
    # Exactly one connection per gate slot, no overflow (api/db/gate.py).
    engine = make_engine(
        db.url,
        echo=db.echo,
        pool_size=db.pool_size + upload_slots,
        pool_timeout=db.pool_timeout_seconds,
        connect_timeout=db.connect_timeout_seconds,
    )
    job_queue: JobQueue = queue if queue is not None else CeleryJobQueue(settings.broker)

    store = open_store(settings.artifacts)
    session_factory = make_session_factory(engine)
    limits = Limits(settings)
    gate = DbGate(
        session_factory,
        request_slots=db.pool_size,
        upload_slots=upload_slots,
        acquire_timeout=db.acquire_timeout_seconds,
        max_waiting=db.max_waiting,
        retry_after=db.busy_retry_after_seconds,
    )

    # Several API processes share their counters through files (api/metrics/process.py).
    process_metrics = ProcessMetrics(
        settings.metrics.multiproc_dir if settings.api.workers > 1 else None
    )

    def sweep() -> None:
        # Once at start-up; the workers' timers run it periodically (docs/upkeep.md).
        try:
            run_upkeep(session_factory, store, settings.upkeep)
        except SQLAlchemyError:
            # The API must come up with the database down (it answers 503 meanwhile).
            log.warning("upkeep sweep skipped: database unavailable", exc_info=True)
        except STORE_ERRORS:
            log.warning("upkeep sweep skipped: artifact store unavailable", exc_info=True)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        log_sandbox_plan(settings.sandbox.python)
        await anyio.to_thread.run_sync(sweep)
        yield
        await limits.close()
        process_metrics.close()
        engine.dispose()
        close = getattr(job_queue, "close", None)
        if callable(close):
            close()

    app = FastAPI(
        title="Model repair service",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory
    app.state.gate = gate
    app.state.limits = limits
    app.state.streams = StreamCounter()
    app.state.auth_cache = AuthCache(
        ttl_seconds=settings.auth.cache_seconds, max_entries=settings.auth.cache_entries
    )
    app.state.store = store
    app.state.queue = job_queue
    app.state.metrics = process_metrics

    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.uploads.json_bytes)
    # Outermost: times the whole request, refusals by the body limit included.
    app.add_middleware(MetricsMiddleware, metrics=process_metrics)

    app.include_router(health.router)
    app.include_router(metrics.router)
    v1 = APIRouter(prefix=API_PREFIX)
    for module in (datasets, models, failures, repairs):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(ui_routes.router)
    app.mount(f"{ui_routes.UI_PREFIX}/static", StaticFiles(directory=ui_routes.STATIC_DIR))
    app.add_exception_handler(ui_routes.LoginRequired, ui_routes.login_redirect)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated spec, with error responses under the media type they are sent as."""
    if app.openapi_schema is None:
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operations in spec["paths"].values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    # An error is a problem document, also on a streaming route (whose
                    # responses FastAPI documents under its own media type).
                    for media in ("application/json", "text/event-stream"):
                        if code[0] in "45" and media in content:
                            content["application/problem+json"] = content.pop(media)
        app.openapi_schema = spec
    return app.openapi_schema
