"""Transient infrastructure errors are retried with backoff; nothing else is."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from worker.transient import is_transient, retry_transient


def _db_down() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())


def test_a_transient_error_is_retried_with_growing_pauses_until_it_passes() -> None:
    calls, pauses = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _db_down()
        return "ok"

    assert retry_transient(flaky, what="test", sleep=pauses.append) == "ok"
    assert len(calls) == 3 and len(pauses) == 2
    assert pauses[1] > pauses[0]


def test_a_bug_is_not_retried() -> None:
    calls = []

    def buggy() -> None:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry_transient(buggy, what="test", sleep=lambda _: None)
    assert len(calls) == 1


def test_the_last_transient_error_propagates_when_attempts_run_out() -> None:
    def down() -> None:
        raise _db_down()

    with pytest.raises(sqlalchemy.exc.OperationalError):
        retry_transient(down, what="test", attempts=3, sleep=lambda _: None)


def test_database_and_broker_outages_count_as_transient_and_bugs_do_not() -> None:
    import kombu.exceptions
    import redis.exceptions

    assert is_transient(_db_down())
    assert is_transient(redis.exceptions.ConnectionError())
    assert is_transient(kombu.exceptions.OperationalError())
    assert not is_transient(ValueError()) and not is_transient(MemoryError())
