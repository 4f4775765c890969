"""The job status sets and the transition table agree with each other."""

from __future__ import annotations

from api.db.jobs import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    CANCEL_REQUESTED_STATUSES,
    LEASED_STATUSES,
    TERMINAL_STATUSES,
)
from api.db.models import JobStatus


def test_every_status_is_active_or_terminal_and_only_terminal_ones_have_no_way_out() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(JobStatus)
    assert set(JobStatus) == ACTIVE_STATUSES | TERMINAL_STATUSES
    assert not ACTIVE_STATUSES & TERMINAL_STATUSES
    assert all(ALLOWED_TRANSITIONS[s] for s in ACTIVE_STATUSES)


def test_leased_jobs_are_active_and_a_leased_job_can_be_handed_back_or_finished() -> None:
    assert LEASED_STATUSES < ACTIVE_STATUSES
    assert JobStatus.queued not in LEASED_STATUSES
    for status in LEASED_STATUSES:
        assert ALLOWED_TRANSITIONS[status] & TERMINAL_STATUSES


def test_a_cancel_request_ends_in_cancelled() -> None:
    assert JobStatus.cancelled in CANCEL_REQUESTED_STATUSES
    for status in CANCEL_REQUESTED_STATUSES - TERMINAL_STATUSES:
        assert JobStatus.cancelled in ALLOWED_TRANSITIONS[status]
