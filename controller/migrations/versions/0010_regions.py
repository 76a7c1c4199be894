"""regions, admin accounts and scopes, review up the chain, deadlines, data sets

Revision ID: 0010
Revises: 0001
Create Date: 2026-11-23 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = None

_BACKFILL_BATCH = 5000


def _backfill_id_numbers() -> None:
    """Records stored before this revision name their person only inside the payload."""
    bind = op.get_bind()
    records = sa.table(
        "records",
        sa.column("record_id", sa.String),
        sa.column("payload", sa.JSON),
        sa.column("id_number", sa.String),
    )
    while True:
        rows = bind.execute(
            sa.select(records.c.record_id, records.c.payload)
            .where(records.c.id_number.is_(None))
            .limit(_BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        for record_id, payload in rows:
            number = str(((payload or {}).get("person") or {}).get("id_number") or "")
            bind.execute(
                records.update()
                .where(records.c.record_id == record_id)
                .values(id_number=number[:18])
            )


def upgrade() -> None:
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("id_number", sa.String(length=18), nullable=True))
        batch_op.add_column(
            sa.Column(
                "review_status",
                sa.String(length=16),
                server_default="collected",
                nullable=False,
            )
        )
        batch_op.add_column(
            sa.Column("approved_level", sa.String(length=12), server_default="", nullable=False)
        )
        batch_op.create_index(
            "ix_records_township_person", ["township_code", "id_number"], unique=False
        )
    _backfill_id_numbers()

    op.create_table(
        "regions",
        sa.Column("code", sa.String(length=12), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("parent", sa.String(length=12), nullable=False),
        sa.Column("name_known", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_regions_parent"), ["parent"], unique=False)

    op.create_table(
        "admin_users",
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("region_prefix", sa.String(length=12), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("token_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("username"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["username"], ["admin_users.username"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("admin_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_admin_sessions_username"), ["username"], unique=False)

    op.create_table(
        "access_denials",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_denials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_denials_at"), ["at"], unique=False)

    op.create_table(
        "review_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("record_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_events_record_id"), ["record_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_review_events_township_code"), ["township_code"], unique=False
        )

    op.create_table(
        "township_declarations",
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_by", sa.String(length=32), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("township_code"),
    )
    op.create_table(
        "phase_deadlines",
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("region_prefix", sa.String(length=12), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=32), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phase", "region_prefix"),
    )
    op.create_table(
        "imported_datasets",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("area", sa.String(length=12), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=12), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id"),
    )
    op.create_table(
        "imported_records",
        sa.Column("record_id", sa.String(length=40), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("approved_level", sa.String(length=12), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["imported_datasets.dataset_id"]),
        sa.PrimaryKeyConstraint("record_id"),
    )
    with op.batch_alter_table("imported_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_imported_records_dataset_id"), ["dataset_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_imported_records_township_code"), ["township_code"], unique=False
        )


def downgrade() -> None:
    op.drop_table("imported_records")
    op.drop_table("imported_datasets")
    op.drop_table("phase_deadlines")
    op.drop_table("township_declarations")
    op.drop_table("review_events")
    op.drop_table("access_denials")
    op.drop_table("admin_sessions")
    op.drop_table("admin_users")
    op.drop_table("regions")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_township_person")
        batch_op.drop_column("approved_level")
        batch_op.drop_column("review_status")
        batch_op.drop_column("id_number")
