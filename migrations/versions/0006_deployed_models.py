"""Deployed models of any family: family, architecture, input spec and FLOPs of a model.

Revision ID: 0006_deployed_models
Revises: 0005_dashboard
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_deployed_models"
down_revision: str | None = "0005_dashboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(
            sa.Column("family", sa.String(length=16), server_default="darts", nullable=False)
        )
        batch.add_column(sa.Column("architecture", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("input_spec", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("num_flops", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.drop_column("num_flops")
        batch.drop_column("input_spec")
        batch.drop_column("architecture")
        batch.drop_column("family")
