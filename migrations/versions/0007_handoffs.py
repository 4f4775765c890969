"""Repair jobs count handoffs (runs handed on by infrastructure) and out-of-memory retries.

Revision ID: 0007_handoffs
Revises: 0006_deployed_models
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_handoffs"
down_revision: str | None = "0006_deployed_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.add_column(
            sa.Column("handoffs", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch.add_column(
            sa.Column("oom_retries", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.drop_column("oom_retries")
        batch.drop_column("handoffs")
