"""who acknowledged an alert (when, with what note) and who it is assigned to

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("acknowledged_by", sa.String(length=32), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("ack_note", sa.String(length=300), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("assigned_to", sa.String(length=32), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("assigned_by", sa.String(length=32), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for name in (
            "assigned_by",
            "assigned_to",
            "assigned_at",
            "ack_note",
            "acknowledged_by",
            "acknowledged_at",
        ):
            batch.drop_column(name)
