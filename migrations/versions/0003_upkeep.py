"""Upkeep: bytes a job keeps and frees, and storage reserved by uploads in flight.

Revision ID: 0003_upkeep
Revises: 0002_exports
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_upkeep"
down_revision: str | None = "0002_exports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.add_column(
            sa.Column("stored_bytes", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("work_bytes_freed", sa.BigInteger(), nullable=True))
    op.create_table(
        "storage_reservations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["owners.id"],
            name=op.f("fk_storage_reservations_owner_id_owners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_storage_reservations")),
    )
    op.create_index(
        op.f("ix_storage_reservations_owner_id"),
        "storage_reservations",
        ["owner_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_storage_reservations_expires_at"),
        "storage_reservations",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_storage_reservations_expires_at"), table_name="storage_reservations")
    op.drop_index(op.f("ix_storage_reservations_owner_id"), table_name="storage_reservations")
    op.drop_table("storage_reservations")
    with op.batch_alter_table("repair_jobs") as batch:
        batch.drop_column("work_bytes_freed")
        batch.drop_column("stored_bytes")
