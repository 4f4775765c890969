"""The upkeep sweep on a migrated SQLite database (the embedded default) with real files:
finished jobs' work directories reduced and counted, old temp files and folders, job
folders without a row and lapsed reservations removed, and nothing recent touched."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.db.migrate import upgrade
from api.db.models import JobStatus, RepairJob, StorageReservation, utcnow
from api.db.session import make_engine, make_session_factory
from api.services.owners import create_owner
from api.services.upkeep import reduce_job, run_upkeep
from api.settings import UpkeepSettings
from api.storage import ArtifactStore, job_folder_key
from tests.api.seed import seed_job

HOUR = 3600.0
SETTINGS = UpkeepSettings(temp_age_seconds=HOUR, orphan_age_seconds=HOUR)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'repair.db'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts")


def _write(path: Path, size: int, *, age: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def _job(
    sessions: sessionmaker[Session], store: ArtifactStore, status: JobStatus
) -> tuple[uuid.UUID, Path]:
    """A job in `status` with a work directory of results and resume state, and a result."""
    with sessions() as session:
        owner_id = create_owner(session, name=f"o-{uuid.uuid4().hex[:8]}", pepper="p").owner_id
        job_id = seed_job(session, owner_id, status=status)
        result = f"{owner_id}/{uuid.uuid4().hex}.json"
        session.get_one(RepairJob, job_id).report_key = result
        session.commit()
    _write(store.path(result), 300)
    folder = store.path(job_folder_key(owner_id, job_id))
    for name, size in [
        ("work/ledger.json", 10), ("work/model.safetensors", 400), ("work/search_state.pt", 1000),
        ("work/iter1/train_state.pt", 2000), ("work/iter1/model.safetensors", 400),
        ("work/.report.json.0a1b2c.tmp", 50), ("attempts.jsonl", 20),
    ]:  # fmt: skip
        _write(folder / name, size)
    return job_id, folder


def test_a_finished_jobs_work_directory_loses_its_resume_state_and_both_sizes_are_counted(
    sessions: sessionmaker[Session], store: ArtifactStore
) -> None:
    job_id, folder = _job(sessions, store, JobStatus.succeeded)
    assert reduce_job(sessions, store, job_id) == 1000 + 2000 + 50
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert left == [
        "attempts.jsonl", "work/iter1/model.safetensors", "work/ledger.json",
        "work/model.safetensors",
    ]  # fmt: skip
    with sessions() as session:
        job = session.get_one(RepairJob, job_id)
        assert (job.work_bytes_freed, job.stored_bytes) == (3050, 20 + 400 + 10 + 400 + 300)
    assert reduce_job(sessions, store, job_id) is None  # counted once


@pytest.mark.parametrize("status", [JobStatus.running, JobStatus.queued, JobStatus.cancelling])
def test_an_active_jobs_work_directory_is_left_whole(
    sessions: sessionmaker[Session], store: ArtifactStore, status: JobStatus
) -> None:
    job_id, folder = _job(sessions, store, status)
    assert reduce_job(sessions, store, job_id) is None
    assert run_upkeep(sessions, store, SETTINGS).jobs_reduced == 0
    assert (folder / "work" / "search_state.pt").is_file()
    assert (folder / "work" / "iter1" / "train_state.pt").is_file()


def test_upkeep_reduces_every_finished_job_the_worker_did_not(
    sessions: sessionmaker[Session], store: ArtifactStore
) -> None:
    jobs = [_job(sessions, store, s) for s in (JobStatus.failed, JobStatus.cancelled)]
    report = run_upkeep(sessions, store, SETTINGS)
    assert (report.jobs_reduced, report.bytes_freed) == (2, 2 * 3050)
    assert not any((folder / "work" / "search_state.pt").exists() for _job_id, folder in jobs)


def test_upkeep_removes_old_temp_files_and_folders_and_keeps_those_being_written(
    sessions: sessionmaker[Session], store: ArtifactStore
) -> None:
    tmp = store.tmp_dir
    old = _write(tmp / "abandoned.upload", 10, age=2 * HOUR)
    fresh = _write(tmp / "streaming.upload", 10)
    old_folder = _write(tmp / "sandbox-1" / "scratch.bin", 10, age=2 * HOUR).parent
    os.utime(old_folder, (time.time() - 2 * HOUR,) * 2)
    # An old folder with a file written just now is still in use.
    busy_folder = _write(tmp / "sandbox-2" / "out.npz", 10).parent
    os.utime(busy_folder, (time.time() - 2 * HOUR,) * 2)
    assert run_upkeep(sessions, store, SETTINGS).temp_files == 2
    assert not old.exists() and not old_folder.exists()
    assert fresh.is_file() and busy_folder.is_dir()


def test_upkeep_removes_job_folders_whose_job_is_gone_and_keeps_the_others(
    sessions: sessionmaker[Session], store: ArtifactStore
) -> None:
    _job_id, kept = _job(sessions, store, JobStatus.running)
    owner = kept.parent.parent.name
    gone = _write(store.root / owner / "jobs" / str(uuid.uuid4()) / "work" / "a.pt", 5).parents[1]
    young = _write(store.root / owner / "jobs" / str(uuid.uuid4()) / "attempts.jsonl", 5).parent
    for folder in (gone, kept):
        os.utime(folder, (time.time() - 2 * HOUR,) * 2)
    assert run_upkeep(sessions, store, SETTINGS).orphan_job_folders == 1
    assert not gone.exists() and kept.is_dir() and young.is_dir()


def test_upkeep_drops_lapsed_reservations_and_keeps_live_ones(
    sessions: sessionmaker[Session], store: ArtifactStore
) -> None:
    with sessions() as session:
        owner_id = create_owner(session, name="r", pepper="p").owner_id
        now = utcnow()
        for minutes in (-1, 10):
            session.add(
                StorageReservation(
                    owner_id=owner_id, bytes=5, expires_at=now + timedelta(minutes=minutes)
                )
            )
        session.commit()
    assert run_upkeep(sessions, store, SETTINGS).reservations == 1
    with sessions() as session:
        assert [r.bytes for r in session.query(StorageReservation)] == [5]
