"""The keeper thread: throttled progress writes, heartbeat, cancel and lost-lease detection."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import JobStatus
from api.settings import WorkerSettings
from repair_core.progress import Progress, RepairCancelled
from tests.worker.jobs import get_job, queued_job, set_job, wait_for
from worker.journal import Journal, read_journal
from worker.keeper import JobKeeper
from worker.lease import Lease, claim

FAST = WorkerSettings(
    heartbeat_seconds=0.3,
    lease_seconds=5.0,
    progress_min_interval_seconds=0.2,
    cancel_poll_seconds=0.1,
)


def _claimed(sessions: sessionmaker[Session], lease_seconds: float = FAST.lease_seconds) -> Lease:
    job_id = queued_job(sessions)
    with sessions() as session:
        lease = claim(session, job_id, owner="w/1", lease_seconds=lease_seconds)
    assert lease is not None
    return lease


def _keeper(
    sessions: sessionmaker[Session], lease: Lease, tmp_path: Path, settings: WorkerSettings = FAST
) -> JobKeeper:
    return JobKeeper(sessions, lease, settings, Journal(tmp_path / "attempts.jsonl", 1))


def _report(percent: float, step: int = 1) -> Progress:
    metrics = {"overall_percent": percent, "loss": 0.5, "nan": float("nan")}
    return Progress("searching", step, 100, metrics)


def test_progress_is_written_a_few_times_a_second_at_most_and_the_last_value_lands(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    lease = _claimed(sessions)
    keeper = _keeper(sessions, lease, tmp_path)
    reports = 0
    with keeper:
        started = time.monotonic()
        while time.monotonic() - started < 1.5:
            reports += 1
            keeper.report(_report(min(90.0, reports / 100), step=reports))
            time.sleep(0.001)
    elapsed = time.monotonic() - started
    assert reports > 200
    assert 3 <= keeper.progress_writes <= elapsed / FAST.progress_min_interval_seconds + 2
    job = get_job(sessions, lease.job_id)
    assert job.step == reports and job.progress == pytest.approx(min(90.0, reports / 100))
    assert job.stage == "searching" and job.metrics["loss"] == 0.5
    assert "nan" not in job.metrics  # JSON holds no NaN
    assert job.eta_seconds is not None and job.eta_seconds > 0


def test_the_heartbeat_extends_the_lease_and_journals_it_first(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    lease = _claimed(sessions)
    with _keeper(sessions, lease, tmp_path) as keeper:
        wait_for(lambda: keeper.lease.expires_at > lease.expires_at, timeout=5, what="renewal")
    job = get_job(sessions, lease.job_id)
    assert job.lease_expires_at is not None and job.lease_expires_at > lease.expires_at
    journaled = [e for e in read_journal(tmp_path / "attempts.jsonl") if e["event"] == "renewing"]
    assert max(e["lease_expires_at"] for e in journaled) >= job.lease_expires_at.isoformat()


def test_a_cancel_request_trips_the_cancel_token_within_a_poll(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    lease = _claimed(sessions)
    with _keeper(sessions, lease, tmp_path) as keeper:
        keeper.cancel_token.check()  # nothing requested yet
        set_job(sessions, lease.job_id, status=JobStatus.cancelling)
        wait_for(lambda: keeper.cancel_requested, timeout=2, what="the cancel request")
        with pytest.raises(RepairCancelled):
            keeper.cancel_token.check()
    assert not keeper.lost


def test_a_lease_handed_to_another_worker_stops_the_job_and_its_writes(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    lease = _claimed(sessions)
    keeper = _keeper(sessions, lease, tmp_path)
    with keeper:
        set_job(sessions, lease.job_id, lease_token=uuid.uuid4(), progress=7.0)
        wait_for(lambda: keeper.lost, timeout=2, what="the lost lease")
        keeper.report(_report(50.0))
    with pytest.raises(RepairCancelled):
        keeper.cancel_token.check()
    assert get_job(sessions, lease.job_id).progress == 7.0


def test_a_keeper_that_cannot_renew_in_time_stops_before_its_lease_runs_out(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    # The heartbeat never comes in time (as when the database is unreachable).
    slow = WorkerSettings(heartbeat_seconds=60, lease_seconds=1.0, cancel_poll_seconds=0.1)
    lease = _claimed(sessions, lease_seconds=slow.lease_seconds)
    with _keeper(sessions, lease, tmp_path, slow) as keeper:
        gave_up_at = wait_for(
            lambda: keeper.lost and time.time(),
            timeout=3,
            what="the keeper to give up",
            interval=0.02,
        )
    assert gave_up_at < lease.expires_at.timestamp()
    assert get_job(sessions, lease.job_id).lease_token == lease.token  # it wrote nothing
