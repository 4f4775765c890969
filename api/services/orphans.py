"""The orphan sweep (docs/job-lifecycle.md, fault 29): artifact files no row points at.

A crash between publishing a file and committing its row, or a row deleted whose files
were not removed yet (the deleting process died), leaves a file nobody can reach; the
same goes for a job folder whose job was deleted. Part of the upkeep sweep
(`api.services.upkeep`).
"""

from __future__ import annotations

import logging
import time
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import RESULT_KEY_COLUMNS, Dataset, FailureBatch, Model, RepairJob
from api.storage import ArtifactStore

log = logging.getLogger(__name__)

ORPHAN_AGE_SECONDS = 3600.0


def referenced_keys(session: Session) -> set[str]:
    """Every storage key a row points at: uploads and repair results."""
    keys: set[str] = set()
    for model in (Dataset, Model, FailureBatch):
        keys.update(session.scalars(sa.select(model.storage_key)))
    for column in (getattr(RepairJob, c) for c in RESULT_KEY_COLUMNS):
        keys.update(k for k in session.scalars(sa.select(column).where(column.is_not(None))) if k)
    return keys


def sweep_orphans(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    *,
    older_than_seconds: float = ORPHAN_AGE_SECONDS,
) -> int:
    """Remove artifact files older than `older_than_seconds` with no row; returns how many."""

    def referenced() -> set[str]:
        with sessions() as session:
            return referenced_keys(session)

    return store.sweep_orphans(referenced, older_than_seconds)


def sweep_job_folders(
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    *,
    older_than_seconds: float = ORPHAN_AGE_SECONDS,
) -> int:
    """Remove job folders (`<owner>/jobs/<job id>`) older than `older_than_seconds` whose
    job has no row; returns how many. A worker creates a job's folder only after claiming
    its row, so a folder listed before the rows are read never belongs to a job that is
    about to be created."""
    cutoff = time.time() - older_than_seconds
    candidates: dict[uuid.UUID, str] = {}
    for key, mtime in store.job_folders():
        try:
            job_id = uuid.UUID(key.rsplit("/", 1)[1])
        except ValueError:
            continue  # not a job's folder: left alone
        if mtime < cutoff:
            candidates[job_id] = key
    if not candidates:
        return 0
    with sessions() as session:
        existing = set(
            session.scalars(sa.select(RepairJob.id).where(RepairJob.id.in_(list(candidates))))
        )
    removed = 0
    for job_id, key in candidates.items():
        if job_id not in existing:
            try:
                store.delete_tree(key)
                removed += 1
            except OSError:
                log.warning("could not remove job folder %s", key, exc_info=True)
    return removed
