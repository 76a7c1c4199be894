"""the confirmation subjects' face templates for the devices' offline face check

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "confirmation_face_templates",
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("confirmation_campaigns.id"),
            primary_key=True,
        ),
        sa.Column("id_number", sa.String(length=18), primary_key=True),
        sa.Column("template", sa.LargeBinary(), nullable=True),
        sa.Column("note", sa.String(length=20), nullable=False, server_default=""),
        sa.Column("source", sa.String(length=60), nullable=False, server_default=""),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("confirmation_face_templates")
