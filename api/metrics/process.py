"""What an API process counts as requests pass: latency by route template and status,
upload bytes and refusals by reason.

With several API processes (`api.workers > 1`, `python -m api`) every process writes its
numbers to memory-mapped files in `metrics.multiproc_dir` (prometheus-client's
multiprocess mode) and a scrape, answered by any one process, sums them all. With one
process the numbers live in this app's own registry, so apps built side by side in one
process (tests) never share series.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Request latency buckets (s): polls answer in milliseconds, uploads take minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
UNMATCHED_ROUTE = "unmatched"  # a path no route serves: one label, whatever the path
_UPLOAD_KINDS = (
    (re.compile(r"^/v1/models/[^/]+/failure-batches/?$"), "failure_batch"),
    (re.compile(r"^/v1/models/?$"), "model"),
    (re.compile(r"^/v1/datasets/?$"), "dataset"),
)
_MAX_PROBLEM_BYTES = 64 * 1024  # an error body read for its code; problem documents are small


def enable_multiprocess(folder: Path) -> None:
    """Switch prometheus-client to its multiprocess mode for this process. It reads its
    folder from the environment, so it is set here (from settings), before any metric of
    this process exists."""
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


def reset_multiprocess_folder(folder: Path) -> None:
    """Remove the files of earlier runs (their processes are gone); `python -m api` calls
    this once, before it starts its worker processes."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def upload_kind(method: str, path: str) -> str | None:
    if method != "POST":
        return None
    return next((kind for pattern, kind in _UPLOAD_KINDS if pattern.match(path)), None)


class ProcessMetrics:
    def __init__(self, multiproc_dir: Path | None) -> None:
        self.multiproc_dir = multiproc_dir
        if multiproc_dir is not None:
            enable_multiprocess(multiproc_dir)
        self.registry = CollectorRegistry()
        registry = None if multiproc_dir is not None else self.registry
        self.requests = Histogram(
            "repair_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upload_bytes = Counter(
            "repair_upload_bytes",
            "Bytes of upload bodies received, by kind (dataset, model, failure_batch)",
            ["kind"],
            registry=registry,
        )
        self.upload_refusals = Counter(
            "repair_upload_refusals",
            "Uploads refused, by kind and reason (the problem document's code)",
            ["kind", "reason"],
            registry=registry,
        )

    def exposition(self) -> bytes:
        if self.multiproc_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(self.multiproc_dir))  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def close(self) -> None:
        if self.multiproc_dir is not None:
            mark_process_dead(os.getpid(), path=str(self.multiproc_dir))  # type: ignore[no-untyped-call]


def _reason(status: int, body: bytes) -> str:
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        code = None
    return code if isinstance(code, str) and code.isidentifier() else f"http_{status}"


def route_template(scope: Scope) -> str:
    """The matched route's template, e.g. `/v1/repairs/{job_id}`. The route FastAPI records
    may be that of an included router, whose template lacks the prefix it was included
    under: the prefix is the part of the path before the part the route matches."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if not isinstance(template, str) or regex is None:
        return UNMATCHED_ROUTE
    path: str = scope["path"]
    for start in (i for i, char in enumerate(path) if char == "/"):
        if regex.fullmatch(path[start:]):
            return path[:start] + template
    return template


class MetricsMiddleware:
    """Times every HTTP request and labels it with its route template (never the raw path,
    so ids do not become series); counts upload bytes and refused uploads."""

    def __init__(self, app: ASGIApp, *, metrics: ProcessMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        kind = upload_kind(scope["method"], scope["path"])
        status = 500  # what the client sees if the app raises before answering
        received = 0
        error_body = bytearray()

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif (
                message["type"] == "http.response.body"
                and kind is not None
                and status >= 400
                and len(error_body) < _MAX_PROBLEM_BYTES
            ):
                error_body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive if kind else receive, watching_send)
        finally:
            template = route_template(scope)
            self.metrics.requests.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )
            if kind is not None:
                self.metrics.upload_bytes.labels(kind).inc(received)
                if status >= 400:
                    reason = _reason(status, bytes(error_body))
                    self.metrics.upload_refusals.labels(kind, reason).inc()
