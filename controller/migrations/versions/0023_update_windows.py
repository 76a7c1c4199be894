"""the campaign's working hours per region, when updates wait, and a rollout's override

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "update_windows",
        sa.Column("region_prefix", sa.String(length=12), primary_key=True),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.Column("utc_offset_minutes", sa.Integer(), nullable=False, server_default="480"),
    )
    with op.batch_alter_table("rollouts") as batch:
        batch.add_column(
            sa.Column("ignore_working_hours", sa.Boolean(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("ignore_working_hours")
    op.drop_table("update_windows")
