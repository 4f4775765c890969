"""Reliability case 29 with a real process: an API process killed (SIGKILL, via the
test-only `fault_point`) between publishing an upload's file and committing its row
leaves a file without a row, never a row naming a missing file; the orphan sweep removes
the file once it is past its age margin, and the dead upload's reservation lapses."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.db.models import Dataset, StorageReservation, utcnow
from api.services.orphans import referenced_keys, sweep_orphans
from api.services.owners import create_owner
from api.services.quotas import sweep_reservations
from api.settings import ArtifactSettings
from api.storage import ArtifactStore
from repairctl.service import PROJECT_ROOT, api_command, child_env
from tests.api import payloads
from tests.api.conftest import LiveServer
from tests.servers import free_port, healthz_answers
from tests.worker.jobs import wait_for

pytestmark = pytest.mark.integration


def test_an_api_killed_between_publishing_an_upload_and_its_row_leaves_only_an_orphan_file(
    live_server: LiveServer, tmp_path: Path
) -> None:
    settings = live_server.settings.model_copy(
        update={
            "artifacts": ArtifactSettings(root=tmp_path / "artifacts"),
            "fault_point": "upload_published",
        }
    )
    store = ArtifactStore(settings.artifacts.root)
    with live_server.session_factory() as session:
        owner = create_owner(session, name=f"crash-{uuid.uuid4().hex[:8]}", pepper="p")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = child_env(settings.model_copy(update={"auth_pepper": "p"}))
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        api_command("127.0.0.1", port), cwd=PROJECT_ROOT, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(
            lambda: healthz_answers(url) or process.poll() is not None, timeout=60, what="the API"
        )
        assert process.poll() is None, (tmp_path / "api.log").read_text()
        with pytest.raises(httpx.HTTPError):  # the process died mid-request
            httpx.post(
                f"{url}/v1/datasets",
                files={"file": ("d.npz", payloads.npz_dataset())},
                headers={"Authorization": f"Bearer {owner.api_key}"},
                timeout=60,
            )
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        log.close()

    owner_dir = store.root / str(owner.owner_id)
    published = [p for p in owner_dir.iterdir() if p.is_file()]
    assert len(published) == 1  # the validated file made it to its key ...
    with live_server.session_factory() as session:
        rows = session.scalar(
            sa.select(sa.func.count())
            .select_from(Dataset)
            .where(Dataset.owner_id == owner.owner_id)
        )
        assert rows == 0  # ... and no row names it, nor any missing file
        assert all(
            store.exists(k) for k in referenced_keys(session) if k.startswith(str(owner.owner_id))
        )
        held = session.scalars(
            sa.select(StorageReservation).where(StorageReservation.owner_id == owner.owner_id)
        ).all()
    assert len(held) == 1  # the dead upload's hold, lapsing on its own

    # Within the age margin the file is kept (its row might be about to commit) ...
    assert sweep_orphans(live_server.session_factory, store, older_than_seconds=3600) == 0
    assert published[0].is_file()
    # ... past it, the sweep removes it.
    then = time.time() - 7200
    os.utime(published[0], (then, then))
    assert sweep_orphans(live_server.session_factory, store, older_than_seconds=3600) == 1
    assert not published[0].exists()
    later = utcnow() + timedelta(seconds=settings.quotas.reservation_seconds + 1)
    with live_server.session_factory() as session:
        assert sweep_reservations(session, now=later) >= 1
        assert session.get(StorageReservation, held[0].id) is None
