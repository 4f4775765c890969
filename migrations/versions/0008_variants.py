"""Variants: the variants a repair job compares, and the other variants' models.

Revision ID: 0008_variants
Revises: 0007_handoffs
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_variants"
down_revision: str | None = "0007_handoffs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.add_column(sa.Column("variants", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("variant_models", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.drop_column("variant_models")
        batch.drop_column("variants")
