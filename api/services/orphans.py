"""The orphan sweep (docs/job-lifecycle.md, fault 29): artifact files no row points at.

A crash between publishing a file and committing its row, or a row deleted after its
file was stored, leaves a file nobody can reach. The API runs this at start-up.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from api.db.models import MODEL_FILE_COLUMNS, Dataset, FailureBatch, Model, RepairJob
from api.storage import ArtifactStore

ORPHAN_AGE_SECONDS = 3600.0


def referenced_keys(session: Session) -> set[str]:
    """Every storage key a row points at: uploads and repair results."""
    keys: set[str] = set()
    for model in (Dataset, Model, FailureBatch):
        keys.update(session.scalars(sa.select(model.storage_key)))
    columns = [getattr(RepairJob, key) for key, _ in MODEL_FILE_COLUMNS.values()]
    for column in (*columns, RepairJob.report_key, RepairJob.report_png_key):
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
