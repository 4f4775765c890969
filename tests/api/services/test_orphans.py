"""The orphan sweep against Postgres: run at API start-up, it removes artifact files older
than an hour that no row names, and keeps every file a row still points at."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.db.models import Dataset, FailureBatch, JobStatus, Model, RepairJob
from api.queue import CeleryJobQueue
from api.services.orphans import sweep_orphans
from api.services.owners import create_owner
from api.settings import ArtifactSettings, Settings
from api.storage import ArtifactStore
from tests.api.conftest import LiveServer, serve
from tests.api.seed import seed_model

pytestmark = pytest.mark.integration

TWO_HOURS = 7200.0


def _write(store: ArtifactStore, key: str, *, age: float) -> Path:
    path = store.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.encode())
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def _owner_with_rows(live_server: LiveServer) -> tuple[uuid.UUID, list[str]]:
    """An owner with a seeded dataset, model, batch and a finished job's report and ONNX
    export: their keys."""
    with live_server.session_factory() as session:
        owner_id = create_owner(
            session, name=f"orphans-{uuid.uuid4().hex[:12]}", pepper="p"
        ).owner_id
        seeded = seed_model(session, owner_id)
        report_key = f"{owner_id}/{uuid.uuid4().hex}.json"
        onnx_key = f"{owner_id}/{uuid.uuid4().hex}.onnx"
        session.add(
            RepairJob(
                owner_id=owner_id,
                model_id=seeded.model_id,
                failure_batch_ids=[str(b) for b in seeded.batch_ids],
                config={},
                status=JobStatus.succeeded,
                max_attempts=1,
                request_sha256="0" * 64,
                report_key=report_key,
                result_onnx_key=onnx_key,
            )
        )
        session.commit()
        keys = [
            key
            for model in (Dataset, Model, FailureBatch)
            for key in session.scalars(
                sa.select(model.storage_key).where(model.owner_id == owner_id)
            )
        ]
    assert len(keys) == 3
    return owner_id, [*keys, report_key, onnx_key]


def test_the_api_start_up_removes_old_files_with_no_row_and_keeps_the_rest(
    live_server: LiveServer, tmp_path: Path
) -> None:
    settings: Settings = live_server.settings.model_copy(
        update={"artifacts": ArtifactSettings(root=tmp_path)}
    )
    store = ArtifactStore(tmp_path)
    owner_id, named = _owner_with_rows(live_server)
    kept = [_write(store, key, age=TWO_HOURS) for key in named]
    orphan = _write(store, store.new_key(owner_id, ".safetensors"), age=TWO_HOURS)
    young = _write(store, store.new_key(owner_id, ".safetensors"), age=60)

    with serve(create_app(settings, CeleryJobQueue(settings.broker))) as url:
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200

    assert not orphan.exists()
    assert young.exists(), "a file younger than an hour may belong to a commit in flight"
    assert all(path.exists() for path in kept)
    # Nothing is left to sweep, and a second sweep says so.
    assert sweep_orphans(live_server.session_factory, store, older_than_seconds=3600) == 0
