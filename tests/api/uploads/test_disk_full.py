"""Disk full (issue 15): an upload that meets a full disk answers 507 and leaves nothing.

A live server of the test's own keeps its artifacts on a 2 MiB tmpfs, so the disk really
fills: once while the body streams in, once while the sandboxed child writes the
validated copy."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from api.queue import CeleryJobQueue
from api.services.quotas import storage_used
from api.settings import ArtifactSettings, Settings
from tests.api import payloads
from tests.api.conftest import LiveServer, make_owner, serve
from tests.api.helpers import assert_nothing_left, problem

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
DISK_BYTES = 2 * MiB


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards (needs root, as on the CI host)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs here ({mounted.stderr.strip()}); run as root")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


@pytest.fixture
def full_disk_server(api_settings: Settings, tiny_disk: Path) -> Iterator[LiveServer]:
    from api.db.session import make_engine, make_session_factory

    settings = api_settings.model_copy(
        update={
            "artifacts": ArtifactSettings(root=tiny_disk / "artifacts"),
            # Caps above the disk, so the disk is what runs out.
            "uploads": api_settings.uploads.model_copy(
                update={
                    "dataset_bytes": 8 * MiB,
                    "member_bytes": 8 * MiB,
                    "unpacked_bytes": 32 * MiB,
                }
            ),
        }
    )
    engine = make_engine(settings.database.url)
    try:
        with serve(create_app(settings, CeleryJobQueue(settings.broker))) as url:
            yield LiveServer(url, settings, make_session_factory(engine))
    finally:
        engine.dispose()


def _npz(images: int, seed: int) -> bytes:
    """A valid dataset of random (incompressible) 16x16 images."""
    import numpy as np

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez(
        buf,
        x_train=rng.integers(0, 255, (images, 3, 16, 16), dtype=np.uint8),
        y_train=np.arange(images, dtype=np.int64) % 2,
        x_test=rng.integers(0, 255, (4, 3, 16, 16), dtype=np.uint8),
        y_test=np.arange(4, dtype=np.int64) % 2,
    )
    return buf.getvalue()


def _stored_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def test_uploads_that_fill_the_disk_answer_507_and_leave_nothing(
    full_disk_server: LiveServer,
) -> None:
    owner_id, key = make_owner(full_disk_server)
    root = full_disk_server.artifacts_root
    too_big = _npz(images=4000, seed=1)  # ~3 MiB: the body itself does not fit
    fits_once = _npz(images=1700, seed=2)  # ~1.3 MiB: fits, its validated copy does not
    assert len(too_big) > DISK_BYTES > len(fits_once) > DISK_BYTES / 2
    with full_disk_server.client(key) as client:
        streamed = client.post("/v1/datasets", files={"file": ("big.npz", too_big)})
        validated = client.post("/v1/datasets", files={"file": ("half.npz", fits_once)})
    for response in (streamed, validated):
        assert response.status_code == 507, response.text
        body = problem(response)
        assert body["code"] == "insufficient_storage"
        assert "disk space" in str(body["detail"]) and "nothing was stored" in str(body["detail"])
        assert str(root) not in response.text
    assert_nothing_left(full_disk_server, owner_id, rows={"datasets": 0})
    assert _stored_bytes(root) == 0
    with full_disk_server.session_factory() as session:
        assert storage_used(session, owner_id) == 0  # the quota is unchanged
    # The space came back: the next upload that fits is stored as usual.
    with full_disk_server.client(key) as client:
        small = client.post("/v1/datasets", files={"file": ("s.npz", payloads.npz_dataset(2))})
    assert small.status_code == 201, small.text
    assert_nothing_left(full_disk_server, owner_id, rows={"datasets": 1})
