"""the self-service face check's score, threshold and reasons on each attempt

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 16:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("self_service_attempts") as batch:
        batch.add_column(sa.Column("face_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("face_threshold", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("face_reasons", sa.String(length=200), nullable=False, server_default="")
        )
        batch.add_column(
            sa.Column("face_reference", sa.String(length=60), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("self_service_attempts") as batch:
        batch.drop_column("face_reference")
        batch.drop_column("face_reasons")
        batch.drop_column("face_threshold")
        batch.drop_column("face_score")
