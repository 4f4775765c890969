"""The storage quota counts bytes in flight and what jobs keep (issue 14, issue 15 C),
over real HTTP: an upload that is still streaming holds its bytes against the quota, in
every API app on the same database (Postgres, and SQLite as in the embedded default),
so a second upload that would not fit beside it answers 413 `quota_exceeded` before its
body is stored; the hold is released when the first is aborted."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.db.migrate import upgrade
from api.db.models import Dataset, JobStatus, StorageReservation
from api.queue import CeleryJobQueue
from api.services.owners import create_owner
from api.settings import ArtifactSettings, DatabaseSettings, QuotaSettings, Settings
from tests.api import payloads
from tests.api.conftest import LiveServer, serve
from tests.api.helpers import problem
from tests.api.seed import seed_job
from tests.worker.jobs import wait_for

pytestmark = pytest.mark.integration

BOUNDARY = "quota-test-boundary"
HELD_FILE = os.urandom(200 * 1024)  # the upload held in flight (never completed)


def multipart(filename: str, data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()


HELD_BODY = multipart("held.npz", HELD_FILE)
SMALL_BODY = multipart("small.npz", payloads.npz_dataset())
HALF = len(HELD_BODY) // 2


class HeldUpload:
    """An upload that sends half its body, then waits for the test to abort it."""

    def __init__(self, url: str, key: str, *, declared: bool) -> None:
        self._abort = threading.Event()
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        if declared:
            headers["Content-Length"] = str(len(HELD_BODY))
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}", **headers}, timeout=60
        )
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        yield HELD_BODY[:HALF]
        self._abort.wait(60)
        raise ConnectionAbortedError("the test aborts this upload")

    def _run(self) -> None:
        try:
            self._client.post("/v1/datasets", content=self._body())
        except BaseException as exc:  # the abort ends it by raising
            self.error = exc

    def abort(self) -> None:
        self._abort.set()
        self._thread.join(30)
        self._client.close()
        assert not self._thread.is_alive()


@contextmanager
def two_apps(settings: Settings) -> Iterator[tuple[str, str]]:
    """Two API apps on one database (as two API processes are), each with its own
    engine, limit store and threads."""
    with ExitStack() as stack:
        urls = [
            stack.enter_context(serve(create_app(settings, CeleryJobQueue(settings.broker))))
            for _ in range(2)
        ]
        yield urls[0], urls[1]


def _settings(
    base: Settings, backend: str, tmp: Path, *, quota: int, step: int = 64 * 1024
) -> Settings:
    database = base.database
    if backend == "sqlite":
        url = f"sqlite:///{tmp / 'repair.db'}"
        upgrade(url)
        database = DatabaseSettings(url=url)
    return base.model_copy(
        update={
            "database": database,
            "artifacts": ArtifactSettings(root=tmp / "artifacts"),
            "quotas": QuotaSettings(storage_bytes=quota, reservation_step_bytes=step),
        }
    )


def _owner(settings: Settings) -> tuple[uuid.UUID, str, sa.Engine]:
    engine = sa.create_engine(settings.database.url)
    with sa.orm.Session(engine) as session:
        created = create_owner(
            session, name=f"q-{uuid.uuid4().hex[:10]}", pepper=settings.auth_pepper
        )
    return created.owner_id, created.api_key, engine


def _reserved(engine: sa.Engine, owner_id: uuid.UUID) -> int | None:
    with engine.connect() as conn:
        return conn.scalar(
            sa.select(sa.func.sum(StorageReservation.bytes)).where(
                StorageReservation.owner_id == owner_id
            )
        )


def _datasets(engine: sa.Engine, owner_id: uuid.UUID) -> int:
    with engine.connect() as conn:
        count = conn.scalar(
            sa.select(sa.func.count()).select_from(Dataset).where(Dataset.owner_id == owner_id)
        )
    return int(count or 0)


def _post_small(url: str, key: str) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
    }
    return httpx.post(f"{url}/v1/datasets", content=SMALL_BODY, headers=headers, timeout=60)


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_an_upload_in_flight_holds_its_bytes_so_a_concurrent_one_past_the_quota_gets_413(
    live_server: LiveServer, tmp_path: Path, backend: str, declared: bool
) -> None:
    # Declared: the held upload reserves its whole Content-Length before a byte is read.
    # Chunked: it reserves what has arrived (plus a step); once half its body is in, the
    # small upload no longer fits beside it.
    quota = (len(HELD_BODY) if declared else HALF) + len(SMALL_BODY) - 1
    settings = _settings(live_server.settings, backend, tmp_path, quota=quota, step=1024)
    owner_id, key, engine = _owner(settings)
    try:
        with two_apps(settings) as (first, second):
            held = HeldUpload(first, key, declared=declared)
            try:
                wait_for(
                    lambda: (_reserved(engine, owner_id) or 0) >= (HALF if not declared else 1),
                    timeout=30, what="the held upload to reserve its bytes",
                )  # fmt: skip
                assert (_reserved(engine, owner_id) or 0) >= (len(HELD_BODY) if declared else HALF)
                for url in (first, second):  # either API app sees the other's hold
                    refused = _post_small(url, key)
                    body = problem(refused)
                    assert refused.status_code == 413 and body["code"] == "quota_exceeded"
                    assert "in progress" in str(body["detail"])
                assert _datasets(engine, owner_id) == 0
            finally:
                held.abort()
            wait_for(
                lambda: _reserved(engine, owner_id) is None,
                timeout=30, what="the aborted upload's reservation to be released",
            )  # fmt: skip
            accepted = _post_small(second, key)
            assert accepted.status_code == 201, accepted.text
            assert _reserved(engine, owner_id) is None  # the row took its bytes over
    finally:
        engine.dispose()


def test_what_a_job_keeps_counts_against_the_quota_and_deleting_the_job_frees_it(
    live_server: LiveServer, tmp_path: Path
) -> None:
    settings = _settings(live_server.settings, "postgres", tmp_path, quota=len(SMALL_BODY) + 10)
    owner_id, key, engine = _owner(settings)
    try:
        with sa.orm.Session(engine) as session:
            job_id = seed_job(session, owner_id, status=JobStatus.succeeded)
        with engine.begin() as conn:
            conn.execute(
                # As the worker counts a finished job (work_bytes_freed set: counted).
                sa.text(
                    "UPDATE repair_jobs SET stored_bytes = :b, work_bytes_freed = 0 WHERE id = :id"
                ),
                {"b": 1000, "id": job_id},
            )
        with two_apps(settings) as (url, _other):
            refused = _post_small(url, key)
            assert refused.status_code == 413 and problem(refused)["code"] == "quota_exceeded"
            deleted = httpx.delete(
                f"{url}/v1/repairs/{job_id}", headers={"Authorization": f"Bearer {key}"}
            )
            assert deleted.status_code == 204, deleted.text
            accepted = _post_small(url, key)
            assert accepted.status_code == 201, accepted.text
    finally:
        engine.dispose()
