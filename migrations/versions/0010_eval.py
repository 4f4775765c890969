"""Every compared variant's exports: name -> format -> SHA-256 (files in the job's folder).

Revision ID: 0010_eval
Revises: 0009_transfer
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_eval"
down_revision: str | None = "0009_transfer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.add_column(sa.Column("variant_exports", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.drop_column("variant_exports")
