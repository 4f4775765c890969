"""The worker's time limits, and the invariant that keeps a live job from running twice.

heartbeat < lease < soft limit < hard limit < visibility timeout
(docs/job-lifecycle.md). A Redis message not acknowledged within the visibility timeout
is delivered again, so it must outlast the longest job; the lease, renewed by the
heartbeat, is what detects a dead worker, much sooner.

Light on purpose: `repairctl serve` checks the settings with it before starting
anything, without importing Celery or building the worker app.
"""

from __future__ import annotations

import itertools

from api.settings import WorkerSettings


class TimingError(ValueError):
    """Worker timing settings that would let a live job be run twice, or cut it short."""


def time_limits(worker: WorkerSettings) -> tuple[int, int, int]:
    """(soft limit, hard limit, visibility timeout) in seconds, after checking the
    invariant heartbeat < lease < soft < hard < visibility."""
    hard = worker.phase_hard_seconds
    soft = hard - worker.soft_limit_margin_seconds
    visibility = hard + worker.visibility_margin_seconds
    chain = [
        ("heartbeat_seconds", worker.heartbeat_seconds),
        ("lease_seconds", worker.lease_seconds),
        ("soft time limit (phase_hard_seconds - soft_limit_margin_seconds)", soft),
        ("phase_hard_seconds", hard),
        ("visibility timeout (phase_hard_seconds + visibility_margin_seconds)", visibility),
    ]
    if worker.heartbeat_seconds <= 0:
        raise TimingError("worker.heartbeat_seconds must be positive")
    for (low_name, low), (high_name, high) in itertools.pairwise(chain):
        if not low < high:
            raise TimingError(f"worker settings: need {low_name} ({low}) < {high_name} ({high})")
    if worker.max_attempts < 1:
        raise TimingError("worker.max_attempts must be at least 1")
    return soft, hard, visibility
