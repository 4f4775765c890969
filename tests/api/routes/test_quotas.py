"""Per-owner abuse limits over real HTTP against Postgres: the storage quota (413
`quota_exceeded`, nothing stored) and the cap on active repair jobs (429 `too_many_jobs`
with `Retry-After`, enforced under the owner-row lock so concurrent requests cannot
both pass)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from api.app import create_app
from api.db.models import Dataset, JobStatus, RepairJob
from api.queue import CeleryJobQueue
from api.settings import ArtifactSettings, QuotaSettings
from tests.api import payloads
from tests.api.conftest import LiveServer, make_owner, serve
from tests.api.helpers import problem, snapshot, temp_files
from tests.api.seed import seed_model

pytestmark = pytest.mark.integration

QUOTA_BYTES = 256 * 1024
ACTIVE_JOBS = 2
RETRY_AFTER = 7


@pytest.fixture(scope="module")
def quota_server(
    live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A second server on the same database with small quotas and its own artifact root."""
    settings = live_server.settings.model_copy(
        update={
            "artifacts": ArtifactSettings(root=tmp_path_factory.mktemp("quota-artifacts")),
            "quotas": QuotaSettings(
                storage_bytes=QUOTA_BYTES,
                active_jobs=ACTIVE_JOBS,
                retry_after_seconds=RETRY_AFTER,
            ),
        }
    )
    with serve(create_app(settings, CeleryJobQueue(settings.broker))) as url:
        yield LiveServer(url, settings, live_server.session_factory)


def _active_jobs(server: LiveServer, owner_id: uuid.UUID) -> int:
    with server.session_factory() as session:
        count = session.scalar(
            sa.select(sa.func.count())
            .select_from(RepairJob)
            .where(
                RepairJob.owner_id == owner_id,
                RepairJob.status.in_([JobStatus.queued, JobStatus.running, JobStatus.cancelling]),
            )
        )
    return int(count or 0)


def test_an_upload_past_the_storage_quota_answers_413_and_stores_nothing(
    quota_server: LiveServer,
) -> None:
    owner_id, key = make_owner(quota_server)
    with quota_server.client(key) as client:
        first = client.post("/v1/datasets", files={"file": ("a.npz", payloads.npz_dataset())})
        assert first.status_code == 201, first.text
        # Fill the quota up to a few bytes short.
        with quota_server.session_factory() as session:
            session.execute(
                sa.update(Dataset)
                .where(Dataset.id == uuid.UUID(first.json()["id"]))
                .values(size_bytes=QUOTA_BYTES - 10)
            )
            session.commit()
        before = snapshot(quota_server, owner_id)
        over = client.post("/v1/datasets", files={"file": ("b.npz", payloads.npz_dataset(4))})
    body = problem(over)
    assert over.status_code == 413 and body["code"] == "quota_exceeded"
    assert str(QUOTA_BYTES) in str(body["detail"])
    assert snapshot(quota_server, owner_id) == before
    assert before.rows["datasets"] == 1 and len(before.files) == 1
    assert temp_files(quota_server) == []


def test_the_storage_quota_is_per_owner(quota_server: LiveServer) -> None:
    full_id, full_key = make_owner(quota_server)
    _other, other_key = make_owner(quota_server)
    with quota_server.client(full_key) as client:
        with quota_server.session_factory() as session:
            seed_model(session, full_id)
            session.execute(
                sa.update(Dataset).where(Dataset.owner_id == full_id).values(size_bytes=QUOTA_BYTES)
            )
            session.commit()
        refused = client.post("/v1/datasets", files={"file": ("d.npz", payloads.npz_dataset())})
    assert refused.status_code == 413 and problem(refused)["code"] == "quota_exceeded"
    with quota_server.client(other_key) as client:
        accepted = client.post("/v1/datasets", files={"file": ("d.npz", payloads.npz_dataset())})
    assert accepted.status_code == 201, accepted.text


def test_a_repair_over_the_active_job_cap_answers_429_until_one_ends(
    quota_server: LiveServer,
) -> None:
    owner_id, key = make_owner(quota_server)
    with quota_server.session_factory() as session:
        seeded = seed_model(session, owner_id)
    body = {"model_id": str(seeded.model_id)}
    with quota_server.client(key) as client:
        jobs = [
            client.post("/v1/repairs", json=body, headers={"Idempotency-Key": f"k{i}"})
            for i in range(ACTIVE_JOBS)
        ]
        assert [r.status_code for r in jobs] == [201] * ACTIVE_JOBS
        refused = client.post("/v1/repairs", json=body)
        assert refused.status_code == 429
        assert problem(refused)["code"] == "too_many_jobs"
        assert refused.headers["retry-after"] == str(RETRY_AFTER)
        assert _active_jobs(quota_server, owner_id) == ACTIVE_JOBS
        # Replaying a job that exists creates nothing, so the cap does not apply.
        replay = client.post("/v1/repairs", json=body, headers={"Idempotency-Key": "k0"})
        assert replay.status_code == 200 and replay.json()["id"] == jobs[0].json()["id"]
        cancelled = client.post(f"/v1/repairs/{jobs[0].json()['id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        again = client.post("/v1/repairs", json=body)
    assert again.status_code == 201, again.text
    assert _active_jobs(quota_server, owner_id) == ACTIVE_JOBS


def test_concurrent_repairs_of_one_owner_cannot_pass_the_cap_together(
    quota_server: LiveServer,
) -> None:
    owner_id, key = make_owner(quota_server)
    with quota_server.session_factory() as session:
        seeded = seed_model(session, owner_id)
    body = {"model_id": str(seeded.model_id)}

    def create(_: int) -> int:
        with quota_server.client(key) as client:
            return client.post("/v1/repairs", json=body).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(create, range(8)))
    assert sorted(codes) == [201] * ACTIVE_JOBS + [429] * (8 - ACTIVE_JOBS)
    assert _active_jobs(quota_server, owner_id) == ACTIVE_JOBS


def test_the_job_cap_is_counted_per_owner(quota_server: LiveServer) -> None:
    busy_id, busy_key = make_owner(quota_server)
    free_id, free_key = make_owner(quota_server)
    with quota_server.session_factory() as session:
        busy = seed_model(session, busy_id)
        free = seed_model(session, free_id)
    with quota_server.client(busy_key) as client:
        for _ in range(ACTIVE_JOBS):
            assert (
                client.post("/v1/repairs", json={"model_id": str(busy.model_id)}).status_code == 201
            )
    with quota_server.client(free_key) as client:
        response = client.post("/v1/repairs", json={"model_id": str(free.model_id)})
    assert response.status_code == 201, response.text
