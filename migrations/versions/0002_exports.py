"""Repaired model exports: the ONNX and TorchScript files of a job, with their digests.

Revision ID: 0002_exports
Revises: 0001
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_exports"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("result_onnx_key", 255),
    ("result_onnx_sha256", 64),
    ("result_torchscript_key", 255),
    ("result_torchscript_sha256", 64),
)


def upgrade() -> None:
    # batch_alter_table: SQLite (the embedded default) rebuilds the table; Postgres alters it.
    with op.batch_alter_table("repair_jobs") as batch:
        for name, length in _COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length=length), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
