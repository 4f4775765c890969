"""The database gate on its own: bounded waits, fast refusals, no leaked slots."""

from __future__ import annotations

import time

import anyio
import pytest
import sqlalchemy as sa

from api.db.gate import DatabaseBusy, DbGate
from api.db.session import make_engine, make_session_factory

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _gate(*, slots: int = 1, timeout: float = 0.5, max_waiting: int = 10) -> DbGate:
    factory = make_session_factory(make_engine("sqlite://"))
    return DbGate(
        factory,
        request_slots=slots,
        upload_slots=1,
        acquire_timeout=timeout,
        max_waiting=max_waiting,
        retry_after=1,
    )


async def test_a_waiter_gets_database_busy_within_the_acquire_timeout() -> None:
    gate = _gate(timeout=0.5)
    async with gate.session():
        started = time.monotonic()
        with pytest.raises(DatabaseBusy) as busy:
            async with gate.session():
                pass
        waited = time.monotonic() - started
    assert 0.3 <= waited <= 0.9
    assert busy.value.headers["Retry-After"] == "1"
    assert gate.stats()["request_slots_free"] == 1


async def test_too_many_waiting_answers_busy_at_once() -> None:
    gate = _gate(max_waiting=0)
    async with gate.session():
        started = time.monotonic()
        with pytest.raises(DatabaseBusy):
            async with gate.session():
                pass
        assert time.monotonic() - started < 0.1


async def test_a_cancelled_holder_and_waiter_leak_no_slot() -> None:
    gate = _gate(timeout=5.0)
    entered = anyio.Event()

    async def hold() -> None:
        async with gate.session() as session:
            session.execute(sa.text("SELECT 1"))
            entered.set()
            await anyio.sleep_forever()

    async def wait() -> None:
        async with gate.session():
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await entered.wait()
        tg.start_soon(wait)
        await anyio.wait_all_tasks_blocked()
        assert gate.stats()["request_waiting"] == 1
        tg.cancel_scope.cancel()
    assert gate.stats() == {
        "request_slots_free": 1,
        "request_waiting": 0,
        "upload_slots_free": 1,
        "upload_waiting": 0,
    }


async def test_run_executes_in_a_thread_under_a_slot() -> None:
    gate = _gate()
    import sqlalchemy as sa

    value = await gate.run(lambda s: s.execute(sa.text("SELECT 41 + 1")).scalar_one())
    assert value == 42
    assert gate.stats()["request_slots_free"] == 1


@pytest.mark.integration
@pytest.mark.parametrize("read_only", [True, False])
async def test_a_read_only_run_opens_no_transaction_and_gives_back_a_transactional_connection(
    postgres_url: str, read_only: bool
) -> None:
    """Postgres's own word: after a read-only run's query the connection is idle, not in
    a transaction (no BEGIN went out, so no ROLLBACK follows); the next ordinary run on
    the same pooled connection is transactional again."""
    engine = make_engine(postgres_url, pool_size=1)
    gate = DbGate(
        make_session_factory(engine),
        request_slots=1,
        upload_slots=0,
        acquire_timeout=1.0,
        max_waiting=1,
        retry_after=1,
    )

    def status_after_a_query(session: sa.orm.Session) -> str:
        session.execute(sa.text("SELECT 1"))
        raw = session.connection().connection.dbapi_connection
        return str(raw.info.transaction_status.name)  # type: ignore[union-attr]

    try:
        seen = await gate.run(status_after_a_query, read_only=read_only)
        after = await gate.run(status_after_a_query)
    finally:
        engine.dispose()
    assert seen == ("IDLE" if read_only else "INTRANS")
    assert after == "INTRANS"
