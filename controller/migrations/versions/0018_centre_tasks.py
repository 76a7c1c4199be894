"""tasks for the townships from a comparison's problems and missing people

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "centre_tasks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("id_number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=24), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_record_id", sa.String(length=40), nullable=True),
        sa.Column("answer_reason", sa.Text(), nullable=False),
        sa.Column("answered_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["comparison_runs.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_centre_tasks_run_id"), "centre_tasks", ["run_id"], unique=False)
    op.create_index(op.f("ix_centre_tasks_status"), "centre_tasks", ["status"], unique=False)
    op.create_index(
        op.f("ix_centre_tasks_township_code"), "centre_tasks", ["township_code"], unique=False
    )
    op.create_index(
        "ix_centre_tasks_township_person",
        "centre_tasks",
        ["township_code", "id_number"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_centre_tasks_township_person", table_name="centre_tasks")
    op.drop_index(op.f("ix_centre_tasks_township_code"), table_name="centre_tasks")
    op.drop_index(op.f("ix_centre_tasks_status"), table_name="centre_tasks")
    op.drop_index(op.f("ix_centre_tasks_run_id"), table_name="centre_tasks")
    op.drop_table("centre_tasks")
