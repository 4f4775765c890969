"""The API on an S3 store (moto's server on loopback, real uvicorn, real Postgres): uploads
land in the bucket, downloads stream with Range and ETag or redirect to a presigned URL,
the quota, deletes, the orphan sweep and the reduction of a finished job's folder reach
the bucket."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.db.models import Dataset, JobStatus, RepairJob
from api.queue import CeleryJobQueue
from api.services.orphans import sweep_job_folders, sweep_orphans
from api.services.upkeep import reduce_job
from api.settings import ArtifactSettings, QuotaSettings
from api.storage.s3 import S3ArtifactStore
from tests.api import payloads
from tests.api.conftest import LiveServer, make_owner, serve
from tests.api.helpers import problem
from tests.api.seed import Seeded, seed_model
from tests.s3server import s3_settings

pytestmark = pytest.mark.integration

QUOTA_BYTES = 256 * 1024
MODEL = bytes(range(256)) * 8  # 2048 bytes


def _s3_server(
    live_server: LiveServer, root: Path, endpoint: str, **s3: object
) -> Iterator[tuple[LiveServer, S3ArtifactStore]]:
    settings = live_server.settings.model_copy(
        update={
            "artifacts": ArtifactSettings(backend="s3", root=root, s3=s3_settings(endpoint, **s3)),
            "quotas": QuotaSettings(storage_bytes=QUOTA_BYTES),
        }
    )
    store = S3ArtifactStore(settings.artifacts.root, settings.artifacts.s3)
    with serve(create_app(settings, CeleryJobQueue(settings.broker))) as url:
        yield LiveServer(url, settings, live_server.session_factory), store


@pytest.fixture(scope="module")
def s3_server(
    live_server: LiveServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, S3ArtifactStore]]:
    yield from _s3_server(live_server, tmp_path_factory.mktemp("s3-scratch"), s3_endpoint)


@pytest.fixture(scope="module")
def presign_server(
    live_server: LiveServer, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, S3ArtifactStore]]:
    yield from _s3_server(
        live_server, tmp_path_factory.mktemp("s3-presign"), s3_endpoint,
        presign_downloads=True, presign_seconds=120,
    )  # fmt: skip


def _owner_objects(store: S3ArtifactStore, owner_id: uuid.UUID) -> list[str]:
    return sorted(o.key for o in store.objects(f"{owner_id}/"))


def _succeeded_job(
    server: LiveServer, store: S3ArtifactStore, owner_id: uuid.UUID, seeded: Seeded
) -> tuple[uuid.UUID, str]:
    """A succeeded job whose model and report are objects in the bucket, with a job folder."""
    job_id = uuid.uuid4()
    model_key = store.new_key(owner_id, ".safetensors")
    report_key = store.new_key(owner_id, ".json")
    store.write_bytes(model_key, MODEL)
    store.write_bytes(report_key, b"{}")
    store.write_bytes(f"{owner_id}/jobs/{job_id}/work/run-1/search_state.pt", b"s" * 300)
    store.write_bytes(f"{owner_id}/jobs/{job_id}/work/run-1/ledger.json", b"{}")
    with server.session_factory() as session:
        session.add(
            RepairJob(
                id=job_id, owner_id=owner_id, model_id=seeded.model_id,
                failure_batch_ids=[str(b) for b in seeded.batch_ids], config={},
                status=JobStatus.succeeded, max_attempts=3, request_sha256="0" * 64,
                result_model_key=model_key, report_key=report_key,
                result_model_sha256=hashlib.sha256(MODEL).hexdigest(),
            )
        )  # fmt: skip
        session.commit()
    return job_id, model_key


def _owner_with_succeeded_job(
    server: LiveServer, store: S3ArtifactStore
) -> tuple[uuid.UUID, str, uuid.UUID, str]:
    """A new owner (id, API key) with a succeeded job: (owner, key, job id, model key)."""
    owner_id, key = make_owner(server)
    with server.session_factory() as session:
        seeded = seed_model(session, owner_id)
    job_id, model_key = _succeeded_job(server, store, owner_id, seeded)
    return owner_id, key, job_id, model_key


def test_an_upload_is_stored_in_the_bucket_and_nothing_stays_in_scratch(
    s3_server: tuple[LiveServer, S3ArtifactStore],
) -> None:
    server, store = s3_server
    owner_id, key = make_owner(server)
    with server.client(key) as client:
        created = client.post("/v1/datasets", files={"file": ("d.npz", payloads.npz_dataset())})
    assert created.status_code == 201, created.text
    with server.session_factory() as session:
        row = session.get_one(Dataset, uuid.UUID(created.json()["id"]))
    assert _owner_objects(store, owner_id) == [row.storage_key]
    assert store.sha256(row.storage_key) is not None
    assert not (server.artifacts_root / str(owner_id)).exists()
    tmp = server.artifacts_root / ".tmp"
    assert not tmp.is_dir() or list(tmp.iterdir()) == []


def test_an_upload_past_the_quota_answers_413_and_adds_no_object(
    s3_server: tuple[LiveServer, S3ArtifactStore],
) -> None:
    server, store = s3_server
    owner_id, key = make_owner(server)
    with server.session_factory() as session:
        seed_model(session, owner_id)
        session.execute(
            sa.update(Dataset).where(Dataset.owner_id == owner_id).values(size_bytes=QUOTA_BYTES)
        )
        session.commit()
    with server.client(key) as client:
        over = client.post("/v1/datasets", files={"file": ("d.npz", payloads.npz_dataset())})
    assert over.status_code == 413 and problem(over)["code"] == "quota_exceeded"
    assert _owner_objects(store, owner_id) == []


def test_a_model_download_streams_from_the_bucket_with_range_and_etag(
    s3_server: tuple[LiveServer, S3ArtifactStore],
) -> None:
    server, store = s3_server
    _owner_id, key, job_id, _ = _owner_with_succeeded_job(server, store)
    url = f"/v1/repairs/{job_id}/model"
    with server.client(key) as client:
        whole = client.get(url)
        assert whole.status_code == 200 and whole.content == MODEL
        etag = whole.headers["etag"]
        assert etag == f'"{hashlib.sha256(MODEL).hexdigest()}"'
        assert whole.headers["accept-ranges"] == "bytes"
        assert f"repaired-{job_id}.safetensors" in whole.headers["content-disposition"]
        part = client.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == MODEL[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(MODEL)}"
        tail = client.get(url, headers={"Range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == MODEL[-5:]
        beyond = client.get(url, headers={"Range": f"bytes={len(MODEL)}-"})
        assert beyond.status_code == 416
        assert beyond.headers["content-range"] == f"bytes */{len(MODEL)}"
        stale = client.get(url, headers={"Range": "bytes=0-0", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == MODEL
        cached = client.get(url, headers={"If-None-Match": etag})
        assert cached.status_code == 304
        report = client.get(f"/v1/repairs/{job_id}/report")
        assert report.status_code == 200 and report.json() == {}


def test_a_presigned_download_redirects_to_a_url_that_serves_the_object(
    presign_server: tuple[LiveServer, S3ArtifactStore],
) -> None:
    server, store = presign_server
    _owner_id, key, job_id, model_key = _owner_with_succeeded_job(server, store)
    _other_id, other_key = make_owner(server)
    with server.client(key) as client:
        redirect = client.get(f"/v1/repairs/{job_id}/model")
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    assert model_key in location and "X-Amz-Expires=120" in location
    assert redirect.headers["etag"] == f'"{hashlib.sha256(MODEL).hexdigest()}"'
    fetched = httpx.get(location)
    assert fetched.status_code == 200 and fetched.content == MODEL
    # The URL is minted only past the owner check: another owner gets 404 and no URL.
    with server.client(other_key) as client:
        foreign = client.get(f"/v1/repairs/{job_id}/model")
    assert foreign.status_code == 404 and "location" not in foreign.headers


def test_deleting_a_finished_job_removes_its_objects_from_the_bucket(
    s3_server: tuple[LiveServer, S3ArtifactStore],
) -> None:
    server, store = s3_server
    owner_id, key, job_id, _ = _owner_with_succeeded_job(server, store)
    assert len(_owner_objects(store, owner_id)) == 4
    with server.client(key) as client:
        assert client.delete(f"/v1/repairs/{job_id}").status_code == 204
    assert _owner_objects(store, owner_id) == []


def test_the_orphan_sweeps_remove_objects_and_job_folders_without_rows(
    s3_server: tuple[LiveServer, S3ArtifactStore],
) -> None:
    server, store = s3_server
    owner_id, key = make_owner(server)
    with server.client(key) as client:
        kept = client.post("/v1/datasets", files={"file": ("d.npz", payloads.npz_dataset())})
    assert kept.status_code == 201, kept.text
    orphan = store.new_key(owner_id, ".npz")
    store.write_bytes(orphan, b"no row")
    stray_folder = f"{owner_id}/jobs/{uuid.uuid4()}"
    store.write_bytes(f"{stray_folder}/work/run-1/ledger.json", b"{}")
    # A cutoff in the future: every object is old enough; rows alone decide.
    assert sweep_orphans(server.session_factory, store, older_than_seconds=-60) >= 1
    assert sweep_job_folders(server.session_factory, store, older_than_seconds=-60) >= 1
    with server.session_factory() as session:
        row = session.get_one(Dataset, uuid.UUID(kept.json()["id"]))
    assert _owner_objects(store, owner_id) == [row.storage_key]


def test_reducing_a_finished_job_deletes_its_resume_state_from_the_bucket(
    s3_server: tuple[LiveServer, S3ArtifactStore],
) -> None:
    server, store = s3_server
    owner_id, _key = make_owner(server)
    with server.session_factory() as session:
        seeded = seed_model(session, owner_id)
    job_id, _ = _succeeded_job(server, store, owner_id, seeded)
    assert reduce_job(server.session_factory, store, job_id) == 300
    work = f"{owner_id}/jobs/{job_id}/work/run-1"
    assert [o.key for o in store.objects(f"{work}/")] == [f"{work}/ledger.json"]
    assert not store.path(f"{owner_id}/jobs/{job_id}").exists()  # scratch copy dropped
    with server.session_factory() as session:
        job = session.get_one(RepairJob, job_id)
    assert job.work_bytes_freed == 300 and job.stored_bytes == 2 + len(MODEL) + 2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_store_answers_503_and_stores_nothing(
    live_server: LiveServer, tmp_path: Path
) -> None:
    # The API still starts (bucket creation and the start-up sweep only log), then
    # every request that needs the store answers 503 with Retry-After, never 500.
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    servers = _s3_server(live_server, tmp_path / "scratch", endpoint, max_attempts=1)
    server, _store = next(servers)
    try:
        owner_id, key = make_owner(server)
        with server.session_factory() as session:
            seeded = seed_model(session, owner_id)
        with server.client(key) as client:
            upload = client.post("/v1/datasets", files={"file": ("d.npz", payloads.npz_dataset())})
            job = client.post("/v1/repairs", json={"model_id": str(seeded.model_id)})
            assert job.status_code == 201, job.text
            with server.session_factory() as session:
                session.execute(
                    sa.update(RepairJob)
                    .where(RepairJob.id == uuid.UUID(job.json()["id"]))
                    .values(status=JobStatus.succeeded, result_model_key=f"{owner_id}/m")
                )
                session.commit()
            download = client.get(f"/v1/repairs/{job.json()['id']}/model")
        for response in (upload, download):
            assert response.status_code == 503, response.text
            assert problem(response)["code"] == "storage_unavailable"
            assert response.headers["retry-after"] == "5"
        with server.session_factory() as session:
            datasets = session.scalar(
                sa.select(sa.func.count()).select_from(Dataset).where(Dataset.owner_id == owner_id)
            )
        assert datasets == 1  # the seeded one only
        tmp = server.artifacts_root / ".tmp"
        assert not tmp.is_dir() or list(tmp.iterdir()) == []
    finally:
        servers.close()
