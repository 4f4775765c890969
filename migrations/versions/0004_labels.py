"""Label on demand: the awaiting_labels status, the owner's labels and picks of a job,
unlabeled counts of failure batches.

Revision ID: 0004_labels
Revises: 0003_upkeep
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_labels"
down_revision = "0003_upkeep"
branch_labels = None
depends_on = None

_OLD = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
_NEW = ("queued", "running", "cancelling", "awaiting_labels", "succeeded", "failed", "cancelled")


def _status(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name="job_status", native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    with op.batch_alter_table("repair_jobs") as batch:
        batch.alter_column("status", existing_type=_status(_OLD), type_=_status(_NEW))
        batch.add_column(sa.Column("labels", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(
            sa.Column("label_rounds", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("picks", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("picks_key", sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column("labels_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("failures_confirmed", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("failures_on_trust", sa.Integer(), nullable=True))
    # The defaults only filled existing rows; the model sets every value on insert.
    with op.batch_alter_table("repair_jobs") as batch:
        for column in ("labels", "label_rounds", "picks"):
            batch.alter_column(column, server_default=None)
    with op.batch_alter_table("failure_batches") as batch:
        batch.add_column(sa.Column("unlabeled", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("failure_batches") as batch:
        batch.alter_column("unlabeled", server_default=None)


def downgrade() -> None:
    op.execute("UPDATE repair_jobs SET status = 'cancelled' WHERE status = 'awaiting_labels'")
    with op.batch_alter_table("failure_batches") as batch:
        batch.drop_column("unlabeled")
    with op.batch_alter_table("repair_jobs") as batch:
        for column in (
            "failures_on_trust", "failures_confirmed", "labels_requested_at", "picks_key",
            "picks", "label_rounds", "labels",
        ):  # fmt: skip
            batch.drop_column(column)
        batch.alter_column("status", existing_type=_status(_NEW), type_=_status(_OLD))
