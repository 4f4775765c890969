"""DELETE of datasets, models, failure batches and finished jobs over real HTTP against
Postgres: 204 and the files gone, 409 naming the job while an active job uses them, and
race-safe against a job created at the same moment."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from api.db.models import Dataset, FailureBatch, JobStatus, Model, RepairJob
from api.services.quotas import storage_used
from tests.api.conftest import LiveServer
from tests.api.helpers import problem
from tests.api.seed import Seeded, seed_model

pytestmark = pytest.mark.integration

NewOwner = Callable[[], tuple[uuid.UUID, str]]


def _store_files(live_server: LiveServer, seeded: Seeded) -> list[str]:
    """Give the seeded rows real files; returns their keys."""
    with live_server.session_factory() as session:
        keys = [session.get_one(Dataset, seeded.dataset_id).storage_key]
        keys.append(session.get_one(Model, seeded.model_id).storage_key)
        keys += [session.get_one(FailureBatch, b).storage_key for b in seeded.batch_ids]
    for key in keys:
        path = live_server.artifacts_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
    return keys


def _finished_job(
    live_server: LiveServer, owner_id: uuid.UUID, seeded: Seeded, status: JobStatus
) -> tuple[uuid.UUID, list[str]]:
    """A job over the seeded model with result files and a work directory on disk."""
    job_id = uuid.uuid4()
    keys = [f"{owner_id}/{uuid.uuid4().hex}.safetensors", f"{owner_id}/{uuid.uuid4().hex}.json"]
    for key in keys:
        (live_server.artifacts_root / key).parent.mkdir(parents=True, exist_ok=True)
        (live_server.artifacts_root / key).write_bytes(b"r" * 1000)
    work = live_server.artifacts_root / str(owner_id) / "jobs" / str(job_id) / "work"
    work.mkdir(parents=True)
    (work / "model.safetensors").write_bytes(b"m" * 500)
    with live_server.session_factory() as session:
        session.add(
            RepairJob(
                id=job_id, owner_id=owner_id, model_id=seeded.model_id,
                failure_batch_ids=[str(b) for b in seeded.batch_ids], config={}, status=status,
                max_attempts=3, request_sha256="0" * 64, result_model_key=keys[0],
                report_key=keys[1], stored_bytes=2500, work_bytes_freed=0,
            )
        )  # fmt: skip
        session.commit()
    return job_id, keys


def _used(live_server: LiveServer, owner_id: uuid.UUID) -> int:
    with live_server.session_factory() as session:
        return storage_used(session, owner_id)


def test_deleting_a_finished_job_answers_204_removes_its_files_and_frees_its_quota(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id)
    job_id, keys = _finished_job(live_server, owner_id, seeded, JobStatus.succeeded)
    before = _used(live_server, owner_id)
    with live_server.client(key) as client:
        response = client.delete(f"/v1/repairs/{job_id}")
        assert response.status_code == 204 and response.content == b""
        assert client.get(f"/v1/repairs/{job_id}").status_code == 404
        assert client.delete(f"/v1/repairs/{job_id}").status_code == 404
        assert client.get(f"/v1/models/{seeded.model_id}").status_code == 200
    assert not any((live_server.artifacts_root / k).exists() for k in keys)
    assert not (live_server.artifacts_root / str(owner_id) / "jobs" / str(job_id)).exists()
    assert _used(live_server, owner_id) == before - 2500


@pytest.mark.parametrize("status", [JobStatus.queued, JobStatus.running, JobStatus.cancelling])
@pytest.mark.parametrize("target", ["dataset", "model", "batch", "job"])
def test_a_delete_while_an_active_job_uses_the_row_answers_409_naming_the_job(
    live_server: LiveServer, new_owner: NewOwner, target: str, status: JobStatus
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id)
    files = _store_files(live_server, seeded)
    job_id, _keys = _finished_job(live_server, owner_id, seeded, status)
    path = {
        "dataset": f"/v1/datasets/{seeded.dataset_id}",
        "model": f"/v1/models/{seeded.model_id}",
        "batch": f"/v1/models/{seeded.model_id}/failure-batches/{seeded.batch_ids[0]}",
        "job": f"/v1/repairs/{job_id}",
    }[target]
    with live_server.client(key) as client:
        response = client.delete(path)
        body = problem(response)
        assert response.status_code == 409 and body["code"] == "in_use"
        assert str(job_id) in str(body["detail"]) and status.value in str(body["detail"])
        assert client.get(path).status_code == 200
    assert all((live_server.artifacts_root / k).exists() for k in files)


def test_deleting_a_dataset_takes_its_models_batches_and_finished_jobs_and_their_files(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id, batches=2)
    files = _store_files(live_server, seeded)
    job_id, job_files = _finished_job(live_server, owner_id, seeded, JobStatus.failed)
    with live_server.client(key) as client:
        assert client.delete(f"/v1/datasets/{seeded.dataset_id}").status_code == 204
        assert client.get(f"/v1/models/{seeded.model_id}").status_code == 404
        assert client.get(f"/v1/repairs/{job_id}").status_code == 404
        assert client.get("/v1/datasets").json()["count"] == 0
    assert not any((live_server.artifacts_root / k).exists() for k in files + job_files)
    assert _used(live_server, owner_id) == 0


def test_deleting_a_failure_batch_keeps_the_model_and_its_other_batches(
    live_server: LiveServer, new_owner: NewOwner
) -> None:
    owner_id, key = new_owner()
    with live_server.session_factory() as session:
        seeded = seed_model(session, owner_id, batches=2)
    files = _store_files(live_server, seeded)
    gone, kept = seeded.batch_ids
    with live_server.client(key) as client:
        url = f"/v1/models/{seeded.model_id}/failure-batches"
        assert client.delete(f"{url}/{gone}").status_code == 204
        assert [b["id"] for b in client.get(url).json()["data"]] == [str(kept)]
        # A batch is found only under its own model.
        assert client.delete(f"/v1/models/{uuid.uuid4()}/failure-batches/{kept}").status_code == 404
    assert [(live_server.artifacts_root / k).exists() for k in files] == [True, True, False, True]


@pytest.mark.parametrize("target", ["model", "batch"])
def test_a_job_created_concurrently_with_a_delete_never_names_a_deleted_upload(
    live_server: LiveServer, new_owner: NewOwner, target: str
) -> None:
    owner_id, key = new_owner()
    outcomes: set[tuple[int, int]] = set()
    with live_server.client(key) as client, ThreadPoolExecutor(2) as pool:
        for _ in range(8):
            with live_server.session_factory() as session:
                seeded = seed_model(session, owner_id)
            batch = seeded.batch_ids[0]
            url = (
                f"/v1/models/{seeded.model_id}"
                if target == "model"
                else f"/v1/models/{seeded.model_id}/failure-batches/{batch}"
            )
            body = {"model_id": str(seeded.model_id), "failure_batch_ids": [str(batch)]}
            create = pool.submit(client.post, "/v1/repairs", json=body)
            delete = pool.submit(client.delete, url)
            created, deleted = create.result(), delete.result()
            outcomes.add((created.status_code, deleted.status_code))
            # Either the job came first (the delete is refused) or the delete did (the
            # job is refused): never both, never a 500.
            assert (created.status_code, deleted.status_code) in {(201, 409), (404, 204)}, (
                created.text, deleted.text,
            )  # fmt: skip
            if created.status_code == 201:
                client.post(f"/v1/repairs/{created.json()['id']}/cancel")  # frees the cap
    with live_server.session_factory() as session:
        jobs = session.execute(
            sa.select(RepairJob.model_id, RepairJob.failure_batch_ids).where(
                RepairJob.owner_id == owner_id
            )
        ).all()
        for model_id, batch_ids in jobs:
            assert session.get(Model, model_id) is not None
            assert all(session.get(FailureBatch, uuid.UUID(b)) for b in batch_ids)
    assert outcomes  # at least one round ran
