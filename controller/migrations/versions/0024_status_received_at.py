"""when the centre took in a device's current status, on the centre's clock

``status_since`` is the device's own stamp, which may run hours off the centre's clock; what
compares with centre times (a command's ``sent_at``, how long a device has been offline) reads
this instead. Rows start from their ``status_since``, the best there is for them.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("status_received_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE devices SET status_received_at = status_since")


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("status_received_at")
