"""annual confirmation of pension receivers: campaigns, subjects and their events, self-service
attempts and throttles, spot checks, the hardship register, weekly report files

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 17:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "confirmation_campaigns",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("county_code", sa.String(6), nullable=False, index=True),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
    )
    op.create_index(
        "ux_confirmation_campaign", "confirmation_campaigns", ["year", "county_code"], unique=True
    )
    op.create_table(
        "confirmation_subjects",
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("confirmation_campaigns.id"),
            primary_key=True,
        ),
        sa.Column("id_number", sa.String(18), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("township_code", sa.String(12), nullable=False, index=True),
        sa.Column("birth_date", sa.String(10), nullable=False),
        sa.Column("age_band", sa.String(8), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("monthly_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("status_at", _AT, nullable=False),
        sa.Column("visit_planned", sa.Boolean(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("confirmed_at", _AT, nullable=True),
        sa.Column("confirmed_by", sa.String(64), nullable=False),
        sa.Column("confirmed_device", sa.String(40), nullable=False),
        sa.Column("face_result", sa.String(12), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("noticed_on", sa.String(10), nullable=True),
        sa.Column("stop_from", sa.String(10), nullable=True),
        sa.Column("restored_on", sa.String(10), nullable=True),
        sa.Column("months_owed", sa.Integer(), nullable=False),
        sa.Column("death_date", sa.String(10), nullable=True),
        sa.Column("death_source", sa.String(16), nullable=False),
        sa.Column("overpaid_months", sa.Integer(), nullable=False),
        sa.Column("overpaid_fen", sa.BigInteger(), nullable=False),
        sa.Column("recovered_fen", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "confirmation_events",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("confirmation_campaigns.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("id_number", sa.String(18), nullable=False, index=True),
        sa.Column("at", _AT, nullable=False, index=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status_from", sa.String(16), nullable=False),
        sa.Column("status_to", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(40), nullable=False),
        sa.Column("face_result", sa.String(12), nullable=False),
        sa.Column("face_score", sa.Float(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("source_id", sa.String(64), nullable=True, unique=True),
    )
    op.create_table(
        "self_service_attempts",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", _AT, nullable=False, index=True),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("id_number", sa.String(32), nullable=False, index=True),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False, index=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("selfie", sa.LargeBinary(), nullable=True),
        sa.Column("selfie_sha256", sa.String(64), nullable=False),
        sa.Column("selfie_type", sa.String(16), nullable=False),
        sa.Column("resolved_at", _AT, nullable=True),
        sa.Column("resolved_by", sa.String(64), nullable=False),
        sa.Column("resolution", sa.String(300), nullable=False),
    )
    op.create_table(
        "self_service_throttles",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("window_start", _AT, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "confirmation_spot_checks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("confirmation_campaigns.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("population", sa.JSON(), nullable=False),
        sa.Column("sample", sa.JSON(), nullable=False),
        sa.Column("drawn_by", sa.String(64), nullable=False),
        sa.Column("drawn_at", _AT, nullable=False),
    )
    op.create_table(
        "hardship_cases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("confirmation_campaigns.id"),
            nullable=False,
            index=True,
        ),
        sa.Column("id_number", sa.String(18), nullable=False, index=True),
        sa.Column("township_code", sa.String(12), nullable=False, index=True),
        sa.Column("situation", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("responsible", sa.String(64), nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("opened_at", _AT, nullable=False),
        sa.Column("closed_at", _AT, nullable=True),
    )
    op.create_table(
        "hardship_follow_ups",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "case_id", sa.Integer(), sa.ForeignKey("hardship_cases.id"), nullable=False, index=True
        ),
        sa.Column("at", _AT, nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_table(
        "confirmation_weekly_files",
        sa.Column(
            "campaign_id",
            sa.Integer(),
            sa.ForeignKey("confirmation_campaigns.id"),
            primary_key=True,
        ),
        sa.Column("friday", sa.String(10), primary_key=True),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("generated_at", _AT, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "confirmation_weekly_files",
        "hardship_follow_ups",
        "hardship_cases",
        "confirmation_spot_checks",
        "self_service_throttles",
        "self_service_attempts",
        "confirmation_events",
        "confirmation_subjects",
    ):
        op.drop_table(table)
    op.drop_index("ux_confirmation_campaign", table_name="confirmation_campaigns")
    op.drop_table("confirmation_campaigns")
