"""a rollout device's attempts and when its next automatic retry is due

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rollout_devices") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollout_devices") as batch:
        batch.drop_column("next_attempt_at")
        batch.drop_column("attempts")
