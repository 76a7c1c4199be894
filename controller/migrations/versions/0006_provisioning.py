"""provisioning: licence grants with their fees, fingerprint changes, device successions

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-23 18:54:54.644972
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "device_successions",
        sa.Column("predecessor_id", sa.String(length=40), nullable=False),
        sa.Column("successor_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["predecessor_id"],
            ["devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["successor_id"],
            ["devices.id"],
        ),
        sa.PrimaryKeyConstraint("predecessor_id"),
    )
    with op.batch_alter_table("device_successions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_successions_successor_id"), ["successor_id"], unique=False
        )

    op.create_table(
        "fingerprint_changes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("device_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed", sa.JSON(), nullable=False),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("within_tolerance", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fingerprint_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fingerprint_changes_device_id"), ["device_id"], unique=False
        )

    op.create_table(
        "licence_grants",
        sa.Column("serial", sa.String(length=32), nullable=False),
        sa.Column("device_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("fee_amount_fen", sa.Integer(), nullable=False),
        sa.Column("fee_currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
        ),
        sa.PrimaryKeyConstraint("serial"),
    )
    with op.batch_alter_table("licence_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_licence_grants_device_id"), ["device_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("licence_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_grants_device_id"))

    op.drop_table("licence_grants")
    with op.batch_alter_table("fingerprint_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fingerprint_changes_device_id"))

    op.drop_table("fingerprint_changes")
    with op.batch_alter_table("device_successions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_successions_successor_id"))

    op.drop_table("device_successions")
