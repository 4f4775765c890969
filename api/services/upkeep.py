"""The upkeep sweep (docs/upkeep.md): what crashes, aborted uploads and deletes leave
behind, and finished jobs' work directories reduced to what their results need.

One sweep:
- temp files and folders under the store's `.tmp` untouched for `temp_age_seconds`
  (uploads cut short, sandbox outputs of a process that died);
- published files no row points at and job folders with no job row, older than
  `orphan_age_seconds` (a crash between publishing and committing, fault 29; a delete
  whose process died before it removed the files);
- upload reservations past their expiry (their API process died mid-upload);
- finished jobs whose work directory was not reduced yet (the worker died first, or the
  sweeper ended the job): resume state and scratch deleted, the bytes freed and the
  bytes the job keeps written to its row.

It runs on every worker's timer (`worker.upkeep.UpkeepStep`) and once at API start-up.
Several at once are safe: files are only removed past an age that no file being written
reaches, listings are taken before the rows are read (a row committed meanwhile still
protects its file), and a job's row is updated only while it has not been counted yet.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from api.db.jobs import TERMINAL_STATUSES
from api.db.models import RESULT_KEY_COLUMNS, RepairJob
from api.services.orphans import sweep_job_folders, sweep_orphans
from api.services.quotas import sweep_reservations
from api.settings import UpkeepSettings
from api.storage import ArtifactStore, job_folder_key
from repair_core.scratch import prune_finished

log = logging.getLogger(__name__)

BATCH = 100  # jobs reduced per sweep; the next sweep takes the rest


@dataclass(frozen=True)
class UpkeepReport:
    temp_files: int
    orphan_files: int
    orphan_job_folders: int
    reservations: int
    jobs_reduced: int
    bytes_freed: int


def reduce_job(
    sessions: sessionmaker[Session], store: ArtifactStore, job_id: uuid.UUID
) -> int | None:
    """Reduce a finished job's folder to what its results need and count it on its row;
    returns the bytes freed, or None when the job is not finished or already counted."""
    with sessions() as session:
        row = session.execute(
            sa.select(
                RepairJob.owner_id, *(getattr(RepairJob, c) for c in RESULT_KEY_COLUMNS)
            ).where(
                RepairJob.id == job_id, RepairJob.status.in_(sorted(TERMINAL_STATUSES)),
                RepairJob.work_bytes_freed.is_(None),
            )
        ).first()  # fmt: skip
    if row is None:
        return None
    owner_id, *result_keys = row
    folder = job_folder_key(owner_id, job_id)
    # A remote store is reduced through a scratch copy: pulled, pruned, and the objects
    # pruned away deleted from the store.
    store.pull_tree(folder)
    pruned = prune_finished(store.path(folder))
    if store.remote:
        store.push_tree(folder, delete_extra=True)
        store.drop_scratch(folder)
    results = 0
    for key in result_keys:
        if key:
            try:
                results += store.size(key)
            except FileNotFoundError:
                continue
    with sessions() as session:
        counted = session.execute(
            sa.update(RepairJob)
            .where(RepairJob.id == job_id, RepairJob.work_bytes_freed.is_(None))
            .values(work_bytes_freed=pruned.freed_bytes, stored_bytes=pruned.kept_bytes + results)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    return pruned.freed_bytes if getattr(counted, "rowcount", 0) else None


def _unreduced_jobs(sessions: sessionmaker[Session]) -> list[uuid.UUID]:
    with sessions() as session:
        return list(
            session.scalars(
                sa.select(RepairJob.id)
                .where(
                    RepairJob.status.in_(sorted(TERMINAL_STATUSES)),
                    RepairJob.work_bytes_freed.is_(None),
                )
                .order_by(RepairJob.finished_at)
                .limit(BATCH)
            )
        )


def run_upkeep(
    sessions: sessionmaker[Session], store: ArtifactStore, settings: UpkeepSettings
) -> UpkeepReport:
    """One sweep. Temp files go first, needing no database; a database error in the rest
    propagates (the caller logs it and the next sweep tries again)."""
    temp = store.sweep_temp(settings.temp_age_seconds)
    orphans = sweep_orphans(sessions, store, older_than_seconds=settings.orphan_age_seconds)
    folders = sweep_job_folders(sessions, store, older_than_seconds=settings.orphan_age_seconds)
    with sessions() as session:
        reservations = sweep_reservations(session)
    reduced = freed = 0
    for job_id in _unreduced_jobs(sessions):
        got = reduce_job(sessions, store, job_id)
        if got is not None:
            reduced += 1
            freed += got
    report = UpkeepReport(temp, orphans, folders, reservations, reduced, freed)
    if any(vars(report).values()):
        log.info("upkeep: %s", report)
    return report
