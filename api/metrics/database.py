"""Metrics read from the database when `/metrics` is scraped: jobs by status, the queue,
stage durations of finished jobs, and the workers' heartbeats (the workers write their
numbers to the database, so they reach Prometheus through the API: no port to open on
a GPU machine, and any API process answers the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from api.db.models import JobStatus, RepairJob, WorkerHeartbeat, utcnow

# Stage duration buckets (s): a smoke stage takes seconds, a paper search hours.
STAGE_BUCKETS = (1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400, 28800)
_STAGE_KEY = re.compile(r"^(?:(?P<variant>[^:]+):)?(?P<stage>[a-z_]+)(?:@\d+)?$")


@dataclass(frozen=True)
class DatabaseSnapshot:
    jobs: dict[str, int]  # status -> jobs
    stage_seconds: dict[str, list[float]]  # stage -> durations of succeeded jobs' stages
    heartbeats: dict[str, tuple[datetime, datetime]]  # worker -> (started_at, seen_at)
    read_at: datetime = field(default_factory=utcnow)


def stage_of(key: str) -> str | None:
    """`searching@2` -> searching; `Control:retraining@1` -> None (the control row's
    stages are not the repair's); anything else unknown -> None."""
    match = _STAGE_KEY.match(key)
    if match is None or match.group("variant") is not None:
        return None
    return match.group("stage")


def read_snapshot(session: Session) -> DatabaseSnapshot:
    counts = dict(
        session.execute(
            sa.select(RepairJob.status, sa.func.count()).group_by(RepairJob.status)
        ).all()
    )
    jobs = {status.value: int(counts.get(status, 0)) for status in JobStatus}
    stage_seconds: dict[str, list[float]] = {}
    # Finished jobs never change their timings, so these series only grow.
    timings = session.scalars(
        sa.select(RepairJob.timings).where(RepairJob.status == JobStatus.succeeded)
    )
    for row in timings:
        for key, seconds in (row or {}).items():
            stage = stage_of(key)
            if stage is not None and isinstance(seconds, int | float):
                stage_seconds.setdefault(stage, []).append(float(seconds))
    heartbeats = {
        name: (started, seen)
        for name, started, seen in session.execute(
            sa.select(WorkerHeartbeat.name, WorkerHeartbeat.started_at, WorkerHeartbeat.seen_at)
        )
    }
    return DatabaseSnapshot(jobs, stage_seconds, heartbeats)


def _histogram(values: list[float]) -> list[tuple[str, float]]:
    buckets = [(str(float(b)), float(sum(v <= b for v in values))) for b in STAGE_BUCKETS]
    return [*buckets, ("+Inf", float(len(values)))]


class SnapshotCollector(Collector):
    def __init__(self, snapshot: DatabaseSnapshot, *, alive_seconds: float) -> None:
        self.snapshot = snapshot
        self.alive_seconds = alive_seconds

    def collect(self):  # type: ignore[no-untyped-def]
        snap = self.snapshot
        jobs = GaugeMetricFamily("repair_jobs", "Repair jobs by status", labels=["status"])
        for status, count in snap.jobs.items():
            jobs.add_metric([status], count)
        yield jobs
        yield GaugeMetricFamily(
            "repair_queue_depth",
            "Jobs waiting for a worker (status queued)",
            value=snap.jobs.get(JobStatus.queued.value, 0),
        )
        stages = HistogramMetricFamily(
            "repair_stage_duration_seconds",
            "Seconds each stage of a succeeded repair took (all iterations)",
            labels=["stage"],
        )
        for stage, seconds in sorted(snap.stage_seconds.items()):
            stages.add_metric([stage], _histogram(seconds), sum_value=sum(seconds))
        yield stages
        seen = GaugeMetricFamily(
            "repair_worker_heartbeat_timestamp_seconds",
            "When each worker last said it was alive (Unix time)",
            labels=["worker"],
        )
        started = GaugeMetricFamily(
            "repair_worker_start_timestamp_seconds",
            "When each worker started (Unix time)",
            labels=["worker"],
        )
        alive = 0
        for name, (start, last) in sorted(snap.heartbeats.items()):
            seen.add_metric([name], last.timestamp())
            started.add_metric([name], start.timestamp())
            alive += (snap.read_at - last).total_seconds() <= self.alive_seconds
        yield seen
        yield started
        yield GaugeMetricFamily(
            "repair_workers_alive",
            "Workers whose last heartbeat is recent (within 3 sweep intervals)",
            value=alive,
        )


def exposition(snapshot: DatabaseSnapshot, *, alive_seconds: float) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot, alive_seconds=alive_seconds))
    return generate_latest(registry)
