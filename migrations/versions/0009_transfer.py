"""Transfer jobs: a job's kind, its source job and the dataset it retrains on.

Revision ID: 0009_transfer
Revises: 0008_variants
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_transfer"
down_revision: str | None = "0008_variants"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="repair")
        )
        batch.add_column(sa.Column("source_job_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("dataset_id", sa.Uuid(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_repair_jobs_source_job_id_repair_jobs"), "repair_jobs",
            ["source_job_id"], ["id"], ondelete="SET NULL",
        )  # fmt: skip
        batch.create_foreign_key(
            op.f("fk_repair_jobs_dataset_id_datasets"), "datasets",
            ["dataset_id"], ["id"], ondelete="CASCADE",
        )  # fmt: skip
        batch.create_index(op.f("ix_repair_jobs_source_job_id"), ["source_job_id"])
        batch.create_index(op.f("ix_repair_jobs_dataset_id"), ["dataset_id"])


def downgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.drop_index(op.f("ix_repair_jobs_dataset_id"))
        batch.drop_index(op.f("ix_repair_jobs_source_job_id"))
        batch.drop_constraint(op.f("fk_repair_jobs_dataset_id_datasets"), type_="foreignkey")
        batch.drop_constraint(op.f("fk_repair_jobs_source_job_id_repair_jobs"), type_="foreignkey")
        batch.drop_column("dataset_id")
        batch.drop_column("source_job_id")
        batch.drop_column("kind")
