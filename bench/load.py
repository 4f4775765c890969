"""Load on a real API server: P pollers at one status poll a second plus U uploads
looping for T seconds; latency percentiles, status counts, 5xx without Retry-After, and
whether the server answers within a second once the load stops.

    python -m bench.load --backend postgres --workers 2 --pollers 200 --uploads 5 --seconds 60
    python -m bench.load --backend sqlite --pollers 200 --uploads 5 --seconds 60
    python -m bench.load --backend postgres --burst 1000
    python -m bench.load --target http://host:8000 --key rk_... --job JOB_ID

Start mode migrates a scratch database, creates an owner and a running job, starts
`python -m api` with `REPAIR_*` variables, and runs a fake worker thread that bumps the
job's progress (and so its version and ETag) `--progress-hz` times a second. The load
client is one asyncio process on the same machine: it shares the CPUs with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa

from api.db.migrate import upgrade
from api.db.models import Dataset, FailureBatch, JobStatus, Model, RepairJob
from api.db.session import make_engine, make_session_factory
from api.services.owners import create_owner
from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings, to_env

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass
class Target:
    url: str
    key: str
    job_id: str
    database_url: str | None = None


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"poll": [], "upload": []})
    codes: dict[str, Counter[str]] = field(
        default_factory=lambda: {"poll": Counter(), "upload": Counter()}
    )
    bare_5xx: int = 0  # 5xx without Retry-After: must stay 0
    # (start time, latency) of each poll: the timeline tells a stall from saturation.
    polls_at: list[tuple[float, float]] = field(default_factory=list)

    def record(self, kind: str, started: float, response: httpx.Response | None) -> None:
        took = time.monotonic() - started
        self.latencies[kind].append(took)
        if kind == "poll":
            self.polls_at.append((started, took))
        if response is None:
            self.codes[kind]["timeout"] += 1
            return
        self.codes[kind][str(response.status_code)] += 1
        if response.status_code >= 500 and "retry-after" not in response.headers:
            self.bare_5xx += 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _database(backend: str, admin_url: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'repair.db'}"
        return
    name = f"repair_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _seed(database_url: str, pepper: str) -> tuple[str, str]:
    """An owner with a running job over rows only (no files): (api key, job id)."""
    engine = make_engine(database_url)
    with make_session_factory(engine)() as session:
        created = create_owner(session, name=f"bench-{uuid.uuid4().hex[:8]}", pepper=pepper)
        common = {"owner_id": created.owner_id, "sha256": "0" * 64, "size_bytes": 1}
        dataset = Dataset(
            name="d", original_filename="d.npz", source_format="npz", storage_key="b/d",
            class_names=["a", "b"], image_shape=[3, 32, 32], split_counts={}, skipped=[], **common,
        )  # fmt: skip
        session.add(dataset)
        session.flush()
        model = Model(
            dataset_id=dataset.id, name="m", original_filename="m.safetensors",
            source_format="safetensors", storage_key="b/m", num_classes=2, num_parameters=1,
            **common,
        )  # fmt: skip
        session.add(model)
        session.flush()
        batch = FailureBatch(
            model_id=model.id, name="f", original_filename="f.npz", source_format="npz",
            storage_key="b/f", accepted=1, rejected=[], **common,
        )  # fmt: skip
        session.add(batch)
        session.flush()
        job = RepairJob(
            owner_id=created.owner_id, model_id=model.id, failure_batch_ids=[str(batch.id)],
            config={}, status=JobStatus.running, stage="search", max_attempts=3,
            request_sha256=hashlib.sha256(os.urandom(8)).hexdigest(),
        )  # fmt: skip
        session.add(job)
        session.commit()
        job_id = str(job.id)
    engine.dispose()
    return created.api_key, job_id


def _fake_worker(database_url: str, job_id: str, hz: float, stop: threading.Event) -> None:
    """Progress writes as a running job makes them: each bumps the version (the ETag)."""
    if hz <= 0:
        return
    engine = make_engine(database_url)
    step = 0
    while not stop.wait(1.0 / hz):
        step += 1
        with engine.begin() as conn:
            conn.execute(
                sa.update(RepairJob)
                .where(RepairJob.id == uuid.UUID(job_id))
                .values(step=step, progress=min(99.0, step / 10), version=RepairJob.version + 1)
            )
    engine.dispose()


@contextmanager
def _server(settings: Settings, workers: int, overrides: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, **to_env(settings), **overrides}
    env.update(REPAIR_API__PORT=str(port), REPAIR_API__WORKERS=str(workers))
    proc = subprocess.Popen([sys.executable, "-m", "api"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the API did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _npz(seed: int, images: int = 64) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    np.savez(
        buffer,
        x_train=rng.integers(0, 255, (images, 3, 32, 32), dtype=np.uint8),
        y_train=np.arange(images, dtype=np.int64) % 2,
        x_test=rng.integers(0, 255, (8, 3, 32, 32), dtype=np.uint8),
        y_test=np.arange(8, dtype=np.int64) % 2,
    )
    return buffer.getvalue()


async def _poller(
    client: httpx.AsyncClient, target: Target, tally: Tally, args: argparse.Namespace,
    phase: float, until: float,
) -> None:  # fmt: skip
    etag: str | None = None
    next_at = time.monotonic() + phase
    while True:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if time.monotonic() >= until:
            return
        headers = {"If-None-Match": etag} if args.etag and etag else {}
        started = time.monotonic()
        response: httpx.Response | None = None
        try:
            response = await client.get(f"/v1/repairs/{target.job_id}", headers=headers)
            etag = response.headers.get("etag", etag)
        except httpx.TimeoutException:
            pass
        except httpx.TransportError:
            # A keep-alive connection the server closed as the request went out: counted
            # apart (no answer, but not a hang), and the poller goes on.
            tally.codes["poll"]["connection_closed"] += 1
            next_at = max(next_at + args.interval, time.monotonic())
            continue
        tally.record("poll", started, response)
        # At most one request a second per poller, even after a slow answer.
        next_at = max(next_at + args.interval, time.monotonic())


async def _uploader(client: httpx.AsyncClient, tally: Tally, seed: int, until: float) -> None:
    n = 0
    while time.monotonic() < until:
        n += 1
        body = _npz(seed * 100_000 + n)
        started = time.monotonic()
        response: httpx.Response | None = None
        try:
            response = await client.post(
                "/v1/datasets", files={"file": (f"bench-{seed}-{n}.npz", body)}
            )
        except httpx.TimeoutException:
            pass
        except httpx.TransportError:
            # A refusal (429) sent before the body was read closes the connection under
            # a client still sending: count it, retry after a second.
            tally.codes["upload"]["closed_early"] += 1
            await asyncio.sleep(1.0)
            continue
        tally.record("upload", started, response)
        if response is not None and response.status_code in (429, 503):
            await asyncio.sleep(min(float(response.headers.get("retry-after", "1")), 5.0))


async def _recovery(target: Target) -> dict[str, Any]:
    """One second after the load: does a poll answer 200 within a second?"""
    await asyncio.sleep(1.0)
    headers = {"Authorization": f"Bearer {target.key}"}
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=1.0) as client:
        started = time.monotonic()
        try:
            response = await client.get(f"/v1/repairs/{target.job_id}")
        except httpx.TimeoutException:
            return {"recovered": False, "ms": None, "status": "timeout"}
    ms = round((time.monotonic() - started) * 1000, 1)
    return {"recovered": response.status_code == 200, "ms": ms, "status": response.status_code}


def _client(target: Target, connections: int, timeout: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=target.url,
        headers={"Authorization": f"Bearer {target.key}"},
        timeout=timeout,
        limits=limits,
    )


def _timeline(polls_at: list[tuple[float, float]], window: float) -> list[dict[str, Any]]:
    """Polls per `window` seconds from the first: count, p50 and p95 of each window."""
    if not polls_at:
        return []
    first = min(at for at, _ in polls_at)
    windows: dict[int, list[float]] = {}
    for at, took in polls_at:
        windows.setdefault(int((at - first) // window), []).append(took)
    return [
        {"from_s": i * window, "polls": len(v), **_percentiles(v)}
        for i, v in sorted(windows.items())
    ]


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None}
    ms = np.array(values) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 95, 99)}


async def run_load(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    until = time.monotonic() + args.seconds
    async with (
        _client(target, args.pollers + 10, args.timeout) as polls,
        _client(target, args.uploads + 2, 120.0) as uploads,
    ):
        tasks = [
            _poller(polls, target, tally, args, args.interval * i / max(1, args.pollers), until)
            for i in range(args.pollers)
        ]
        tasks += [_uploader(uploads, tally, seed, until) for seed in range(args.uploads)]
        await asyncio.gather(*tasks)
    polls_done = len(tally.latencies["poll"])
    return {
        "mode": "load",
        "poll": {**_percentiles(tally.latencies["poll"]), "codes": dict(tally.codes["poll"])},
        "upload": {
            **_percentiles(tally.latencies["upload"]),
            "codes": dict(tally.codes["upload"]),
        },
        "polls_per_second": round(polls_done / args.seconds, 1),
        "bare_5xx": tally.bare_5xx,
        "timeline": _timeline(tally.polls_at, args.window),
        **(await _recovery(target)),
    }


async def run_burst(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    tally = Tally()
    async with _client(target, args.burst + 10, args.timeout) as client:

        async def one() -> None:
            started = time.monotonic()
            response: httpx.Response | None = None
            with suppress(httpx.TimeoutException):
                response = await client.get(f"/v1/repairs/{target.job_id}")
            tally.record("poll", started, response)

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(args.burst)))
        took = time.monotonic() - started
    return {
        "mode": "burst",
        "burst": args.burst,
        "all_answered_s": round(took, 2),
        "poll": {**_percentiles(tally.latencies["poll"]), "codes": dict(tally.codes["poll"])},
        "bare_5xx": tally.bare_5xx,
        **(await _recovery(target)),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    p.add_argument("--target", help="an API already running: its base URL")
    p.add_argument("--key", help="with --target: an API key")
    p.add_argument("--job", help="with --target: a job id of that key's owner")
    p.add_argument("--workers", type=int, default=1, help="API worker processes")
    p.add_argument("--pollers", type=int, default=200)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between a poller's polls")
    p.add_argument("--uploads", type=int, default=5, help="concurrent upload loops")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--window", type=float, default=10.0, help="seconds per timeline window")
    p.add_argument("--etag", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--progress-hz", type=float, default=3.0)
    p.add_argument("--burst", type=int, default=0, help="N simultaneous GETs instead of load")
    p.add_argument("--timeout", type=float, default=10.0, help="client timeout of a poll")
    p.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="limit state when --workers > 1 (limits must be shared by the processes)",
    )
    p.add_argument("--set", action="append", default=[], metavar="REPAIR_X=V")
    p.add_argument("--json", type=Path, help="also write the figures here")
    return p


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)

    def measure(target: Target) -> dict[str, Any]:
        runner = run_burst if args.burst else run_load
        return asyncio.run(runner(target, args))

    if args.target:
        if not (args.key and args.job):
            raise SystemExit("--target needs --key and --job")
        result = measure(Target(args.target, args.key, args.job))
    else:
        with tempfile.TemporaryDirectory(prefix="repair-bench-") as tmp:
            folder = Path(tmp)
            with _database(args.backend, args.pg_admin_url, folder) as url:
                upgrade(url)
                settings = Settings(
                    # A fresh secret per run: outside the embedded default the API refuses
                    # the default pepper (api.settings.check_secrets).
                    auth_pepper=secrets.token_urlsafe(32),
                    database=DatabaseSettings(url=url),
                    broker=BrokerSettings(url="filesystem://", folder=folder / "broker"),
                    artifacts=ArtifactSettings(root=folder / "artifacts"),
                )
                overrides = dict(item.partition("=")[::2] for item in args.set)
                if args.workers > 1:
                    overrides.setdefault("REPAIR_LIMITS__REDIS_URL", args.redis_url)
                    overrides.setdefault("REPAIR_LIMITS__BACKEND", "redis")
                    overrides.setdefault(
                        "REPAIR_LIMITS__KEY_PREFIX", f"repair-bench-{uuid.uuid4().hex[:8]}:"
                    )
                key, job_id = _seed(url, settings.auth_pepper)
                stop = threading.Event()
                worker = threading.Thread(
                    target=_fake_worker, args=(url, job_id, args.progress_hz, stop), daemon=True
                )
                with _server(settings, args.workers, overrides) as base:
                    worker.start()
                    try:
                        result = measure(Target(base, key, job_id, url))
                    finally:
                        stop.set()
                        worker.join(timeout=10)
    result["args"] = {k: str(v) for k, v in vars(args).items() if k not in ("key",)}
    result["nproc"] = os.cpu_count()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
