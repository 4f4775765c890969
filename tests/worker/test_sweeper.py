"""The sweeper hands on jobs nobody works on: expired leases, lost messages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import JobStatus
from api.queue import CeleryJobQueue
from api.settings import BrokerSettings, WorkerSettings
from tests.worker.jobs import get_job, queued_job, set_job
from worker.lease import claim, utcnow
from worker.sweeper import sweep

SETTINGS = WorkerSettings(requeue_queued_after_seconds=120.0)


@pytest.fixture
def broker(tmp_path: Path) -> BrokerSettings:
    return BrokerSettings(url="filesystem://", folder=tmp_path / "broker")


@pytest.fixture
def queue(broker: BrokerSettings) -> Iterator[CeleryJobQueue]:
    job_queue = CeleryJobQueue(broker)
    try:
        yield job_queue
    finally:
        job_queue.close()


def _messages(broker: BrokerSettings) -> list[str]:
    if not broker.folder.is_dir():
        return []
    return [p.read_text() for p in broker.folder.iterdir() if p.is_file()]


def _running(sessions: sessionmaker[Session], *, expired: bool, **values: object) -> uuid.UUID:
    job_id = queued_job(sessions)
    with sessions() as session:
        assert claim(session, job_id, owner="dead/1", lease_seconds=60) is not None
    if expired:
        values["lease_expires_at"] = utcnow() - timedelta(seconds=1)
    if values:
        set_job(sessions, job_id, **values)
    return job_id


def test_a_running_job_whose_lease_expired_is_requeued_and_sent_again(
    sessions: sessionmaker[Session], queue: CeleryJobQueue, broker: BrokerSettings
) -> None:
    job_id = _running(sessions, expired=True)
    report = sweep(sessions, queue, SETTINGS)
    assert report.requeued == [job_id] and not report.failed
    job = get_job(sessions, job_id)
    assert job.status == JobStatus.queued and job.attempts == 1  # attempts are kept
    assert job.lease_token is None and job.lease_expires_at is None
    messages = _messages(broker)
    assert len(messages) == 1 and str(job_id) in messages[0]


def test_a_live_lease_is_left_alone(
    sessions: sessionmaker[Session], queue: CeleryJobQueue, broker: BrokerSettings
) -> None:
    job_id = _running(sessions, expired=False)
    before = get_job(sessions, job_id)
    report = sweep(sessions, queue, SETTINGS)
    assert report.requeued == report.failed == report.resent == []
    assert get_job(sessions, job_id).version == before.version
    assert _messages(broker) == []


def test_an_expired_job_on_its_last_attempt_fails_saying_why(
    sessions: sessionmaker[Session], queue: CeleryJobQueue, broker: BrokerSettings
) -> None:
    job_id = _running(sessions, expired=True, attempts=3)
    report = sweep(sessions, queue, SETTINGS)
    assert report.failed == [job_id]
    job = get_job(sessions, job_id)
    assert job.status == JobStatus.failed and job.error_type == "WorkerLost"
    assert "gave up after 3 of 3 attempts" in (job.error or "")
    assert "dead/1" in (job.error or "") and job.finished_at is not None
    assert _messages(broker) == []


def test_an_expired_job_with_a_cancel_request_is_cancelled(
    sessions: sessionmaker[Session], queue: CeleryJobQueue
) -> None:
    job_id = _running(sessions, expired=True, status=JobStatus.cancelling)
    assert sweep(sessions, queue, SETTINGS).cancelled == [job_id]
    job = get_job(sessions, job_id)
    assert job.status == JobStatus.cancelled and job.lease_token is None


def test_a_queued_job_whose_message_was_lost_is_sent_again_at_doubling_intervals(
    sessions: sessionmaker[Session], queue: CeleryJobQueue, broker: BrokerSettings
) -> None:
    job_id = queued_job(sessions)
    created = get_job(sessions, job_id).created_at

    def resent_at(seconds: float) -> bool:
        report = sweep(sessions, queue, SETTINGS, now=created + timedelta(seconds=seconds))
        return report.resent == [job_id]

    assert [resent_at(t) for t in (30, 130, 200, 250, 270, 500, 550)] == [
        False,  # younger than requeue_queued_after_seconds
        True,
        False,  # 70 s after the last send, which came 130 s after creation
        False,
        True,  # 140 s >= 130 s
        False,
        True,  # 280 s >= 270 s
    ]
    assert len(_messages(broker)) == 3
    assert get_job(sessions, job_id).status == JobStatus.queued


def test_a_queued_job_out_of_attempts_fails(
    sessions: sessionmaker[Session], queue: CeleryJobQueue
) -> None:
    job_id = queued_job(sessions)
    set_job(sessions, job_id, attempts=3)
    later = get_job(sessions, job_id).created_at + timedelta(seconds=121)
    assert sweep(sessions, queue, SETTINGS, now=later).failed == [job_id]
    assert get_job(sessions, job_id).error_type == "AttemptsExhausted"


def _awaiting_labels(sessions: sessionmaker[Session], *, asked_ago: timedelta) -> uuid.UUID:
    """A job that stopped for labels: no lease, asked `asked_ago`."""
    job_id = queued_job(sessions)
    asked = utcnow() - asked_ago
    set_job(
        sessions, job_id, status=JobStatus.awaiting_labels, attempts=1, lease_token=None,
        lease_expires_at=None, labels_requested_at=asked, updated_at=asked,
    )  # fmt: skip
    return job_id


def test_a_job_awaiting_labels_is_neither_requeued_nor_failed_as_a_lost_lease(
    sessions: sessionmaker[Session], queue: CeleryJobQueue, broker: BrokerSettings
) -> None:
    job_id = _awaiting_labels(sessions, asked_ago=timedelta(hours=5))
    report = sweep(sessions, queue, SETTINGS)
    assert report == type(report)()
    assert get_job(sessions, job_id).status == JobStatus.awaiting_labels
    assert _messages(broker) == []


def test_a_job_awaiting_labels_past_labels_wait_seconds_is_cancelled_saying_why(
    sessions: sessionmaker[Session], queue: CeleryJobQueue, broker: BrokerSettings
) -> None:
    patient = _awaiting_labels(sessions, asked_ago=timedelta(minutes=1))
    overdue = _awaiting_labels(sessions, asked_ago=timedelta(hours=2))
    settings = SETTINGS.model_copy(update={"labels_wait_seconds": 3600.0})
    report = sweep(sessions, queue, settings)
    assert report.cancelled == [overdue] and not report.requeued and not report.resent
    job = get_job(sessions, overdue)
    assert job.status == JobStatus.cancelled and job.error_type == "LabelsTimeout"
    assert job.error is not None and "within 3600 s" in job.error
    assert job.finished_at is not None
    assert get_job(sessions, patient).status == JobStatus.awaiting_labels
    assert _messages(broker) == []


def test_each_sweep_records_the_workers_heartbeat(sqlite_url: str, broker: BrokerSettings) -> None:
    import sqlalchemy as sa

    from api.db.models import WorkerHeartbeat
    from api.db.session import make_engine, make_session_factory
    from api.settings import DatabaseSettings, Settings
    from worker.sweeper import Sweeper

    settings = Settings(database=DatabaseSettings(url=sqlite_url), broker=broker)
    sweeper = Sweeper(settings, worker_name="gpu0@host")
    engine = make_engine(sqlite_url)
    try:
        rows = []
        for _ in range(2):
            sweeper()
            with make_session_factory(engine)() as session:
                rows.append(session.scalars(sa.select(WorkerHeartbeat)).one())
    finally:
        sweeper.close()
        engine.dispose()
    first, second = rows
    assert first.name == second.name == "gpu0@host"
    assert first.started_at == second.started_at <= first.seen_at <= second.seen_at
    assert second.seen_at > first.seen_at
