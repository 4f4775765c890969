"""The job status sets and the transition table agree with each other."""

from __future__ import annotations

from api.db.jobs import (
    ACTIVE_STATUSES,
    ALLOWED_TRANSITIONS,
    CANCEL_AT_ONCE_STATUSES,
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


def test_awaiting_labels_is_active_holds_no_lease_and_leads_only_to_queued_or_cancelled() -> None:
    waiting = JobStatus.awaiting_labels
    assert waiting in ACTIVE_STATUSES and waiting not in LEASED_STATUSES
    assert waiting in ALLOWED_TRANSITIONS[JobStatus.running]
    assert ALLOWED_TRANSITIONS[waiting] == {JobStatus.queued, JobStatus.cancelled}
    assert waiting in CANCEL_AT_ONCE_STATUSES and JobStatus.queued in CANCEL_AT_ONCE_STATUSES
    assert not CANCEL_AT_ONCE_STATUSES & LEASED_STATUSES
