"""Claiming, renewing and fencing a job's lease, on SQLite and on Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import JobStatus
from api.db.session import make_engine, make_session_factory
from tests.worker.jobs import get_job, queued_job, set_job
from worker.lease import (
    Handoff,
    claim,
    finish,
    hand_off,
    renew,
    update_fenced,
    utcnow,
    why_not_claimed,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def db(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    url = (
        sqlite_url if request.param == "sqlite" else request.getfixturevalue("worker_postgres_url")
    )
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def job(db: sessionmaker[Session]) -> uuid.UUID:
    return queued_job(db)


def test_the_first_claim_wins_and_a_second_delivery_finds_the_job_leased(
    db: sessionmaker[Session], job: uuid.UUID
) -> None:
    with db() as session:
        lease = claim(session, job, owner="w1/1", lease_seconds=60)
    assert lease is not None and lease.attempt == 1
    before = get_job(db, job)
    with db() as session:
        assert claim(session, job, owner="w2/1", lease_seconds=60) is None
        assert "under the lease of w1/1, live" in why_not_claimed(session, job)
    after = get_job(db, job)
    assert after.version == before.version  # the losing claim wrote nothing
    assert (after.status, after.attempts, after.lease_owner) == (JobStatus.running, 1, "w1/1")
    assert after.lease_token == lease.token and after.started_at is not None


@pytest.mark.integration
def test_concurrent_claims_on_postgres_let_exactly_one_worker_run_the_job(
    worker_postgres_url: str,
) -> None:
    engine = make_engine(worker_postgres_url)
    db = make_session_factory(engine)
    try:
        job_id = queued_job(db)

        def try_claim(n: int) -> bool:
            with db() as session:
                return claim(session, job_id, owner=f"w{n}/1", lease_seconds=60) is not None

        with ThreadPoolExecutor(8) as pool:
            wins = list(pool.map(try_claim, range(8)))
        assert wins.count(True) == 1
        assert get_job(db, job_id).attempts == 1
    finally:
        engine.dispose()


def test_a_job_out_of_attempts_cannot_be_claimed(db: sessionmaker[Session], job: uuid.UUID) -> None:
    set_job(db, job, attempts=3, max_attempts=3)
    with db() as session:
        assert claim(session, job, owner="w1/1", lease_seconds=60) is None
        assert "3 of 3 attempts" in why_not_claimed(session, job)


def test_renewing_extends_the_lease_until_another_worker_holds_it(
    db: sessionmaker[Session], job: uuid.UUID
) -> None:
    with db() as session:
        lease = claim(session, job, owner="w1/1", lease_seconds=5)
    assert lease is not None
    later = utcnow() + timedelta(seconds=30)
    with db() as session:
        renewed = renew(session, lease, lease_seconds=60, now=later)
    assert renewed is not None and renewed.expires_at == later + timedelta(seconds=60)
    assert get_job(db, job).lease_expires_at == renewed.expires_at
    set_job(db, job, lease_token=uuid.uuid4())  # handed on to someone else
    with db() as session:
        assert renew(session, lease, lease_seconds=60) is None


def test_writes_with_a_stale_token_change_nothing(
    db: sessionmaker[Session], job: uuid.UUID
) -> None:
    with db() as session:
        stale = claim(session, job, owner="w1/1", lease_seconds=60)
    assert stale is not None
    set_job(db, job, status=JobStatus.queued, lease_token=None)  # the sweeper handed it on
    with db() as session:
        fresh = claim(session, job, owner="w2/1", lease_seconds=60)
    assert fresh is not None and fresh.attempt == 2
    with db() as session:
        assert not update_fenced(session, stale, {"progress": 99.0})
        assert not finish(session, stale, JobStatus.succeeded)
        session.commit()
    job_row = get_job(db, job)
    assert job_row.status == JobStatus.running and job_row.progress == 0.0
    assert job_row.lease_owner == "w2/1"
    with db() as session:
        assert finish(session, fresh, JobStatus.failed, {"error": "x", "error_type": "E"})
        session.commit()
    done = get_job(db, job)
    assert done.status == JobStatus.failed and done.lease_token is None
    assert done.finished_at is not None


EXHAUSTED = ("HandoffsExhausted", "handed on too often")


def test_a_handoff_requeues_at_once_spends_no_attempt_and_counts_itself(
    db: sessionmaker[Session], job: uuid.UUID
) -> None:
    for run in (1, 2, 3):
        with db() as session:
            lease = claim(session, job, owner=f"w{run}/1", lease_seconds=600)
        assert lease is not None and (lease.attempt, lease.run) == (1, run)
        with db() as session:
            handed = hand_off(
                session, lease, why="deploy", max_handoffs=5, exhausted_error=EXHAUSTED
            )
        assert handed is Handoff.queued
        row = get_job(db, job)
        # The lease is dropped now, not when it would have expired: the next claim is free.
        assert (row.status, row.attempts, row.handoffs) == (JobStatus.queued, 0, run)
        assert row.lease_token is None and row.lease_expires_at is None


def test_past_max_handoffs_the_job_fails_saying_why(
    db: sessionmaker[Session], job: uuid.UUID
) -> None:
    set_job(db, job, handoffs=2)
    with db() as session:
        lease = claim(session, job, owner="w1/1", lease_seconds=600)
        assert lease is not None
        handed = hand_off(
            session, lease, why="soft limit", max_handoffs=2, exhausted_error=EXHAUSTED
        )
    assert handed is Handoff.exhausted
    row = get_job(db, job)
    assert (row.status, row.error_type, row.handoffs) == (JobStatus.failed, "HandoffsExhausted", 2)
    assert row.error == "handed on too often (soft limit)" and row.lease_token is None


def test_a_run_the_sweeper_requeued_during_an_outage_is_refunded_but_not_after_a_new_claim(
    db: sessionmaker[Session], job: uuid.UUID
) -> None:
    with db() as session:
        lease = claim(session, job, owner="w1/1", lease_seconds=600)
    assert lease is not None
    # The database came back after the lease ran out, and the sweeper got there first
    # (its move: back to queued, attempts kept, lease dropped).
    set_job(db, job, status=JobStatus.queued, lease_token=None, lease_expires_at=None)
    with db() as session:
        handed = hand_off(session, lease, why="outage", max_handoffs=5, exhausted_error=EXHAUSTED)
    assert handed is Handoff.queued
    row = get_job(db, job)
    assert (row.status, row.attempts, row.handoffs) == (JobStatus.queued, 0, 1)

    with db() as session:
        second = claim(session, job, owner="w2/1", lease_seconds=600)
    assert second is not None
    with db() as session:  # the first run again: a later claim owns the attempt now
        assert (
            hand_off(session, lease, why="outage", max_handoffs=5, exhausted_error=EXHAUSTED)
            is Handoff.lost
        )
    row = get_job(db, job)
    assert (row.status, row.attempts, row.handoffs, row.lease_owner) == (
        JobStatus.running, 1, 1, "w2/1",
    )  # fmt: skip
