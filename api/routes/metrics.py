"""`GET /metrics`: Prometheus text format, this service's metrics (README, "Metrics")."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.deps import GateDep, SettingsDep
from api.errors import UnauthorizedError
from api.metrics import database
from api.metrics.process import ProcessMetrics
from api.schemas.common import problem_responses

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        **problem_responses(401, 503),
    },
)
async def metrics(
    request: Request,
    settings: SettingsDep,
    gate: GateDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Request latency, uploads, jobs by status, queue depth, stage durations and worker
    heartbeats. With `metrics.token` set, send `Authorization: Bearer <token>`."""
    token = settings.metrics.token
    if token is not None and not hmac.compare_digest(
        (authorization or "").encode(), f"Bearer {token}".encode()
    ):
        raise UnauthorizedError(
            "metrics need `Authorization: Bearer <metrics.token>`",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    process: ProcessMetrics = request.app.state.metrics
    snapshot = await gate.run(database.read_snapshot)
    alive = 3 * settings.worker.sweep_seconds
    body = process.exposition() + database.exposition(snapshot, alive_seconds=alive)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
