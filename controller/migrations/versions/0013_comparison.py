"""departments' extracts, comparison runs and their findings, deceased people

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "department_extracts",
        sa.Column("extract_id", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=24), nullable=False),
        sa.Column("region_prefix", sa.String(length=12), nullable=False),
        sa.Column("file_name", sa.String(length=300), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("extract_id"),
    )
    op.create_index(
        op.f("ix_department_extracts_department"),
        "department_extracts",
        ["department"],
        unique=False,
    )
    op.create_index(
        op.f("ix_department_extracts_imported_at"),
        "department_extracts",
        ["imported_at"],
        unique=False,
    )
    op.create_table(
        "comparison_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("department", sa.String(length=24), nullable=False),
        sa.Column("region_prefix", sa.String(length=12), nullable=False),
        sa.Column("extract_id", sa.String(length=64), nullable=False),
        sa.Column("collected_source", sa.String(length=300), nullable=False),
        sa.Column("engine", sa.String(length=8), nullable=False),
        sa.Column("run_by", sa.String(length=64), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("department_rows", sa.Integer(), nullable=False),
        sa.Column("collected_rows", sa.Integer(), nullable=False),
        sa.Column("linked_exact", sa.Integer(), nullable=False),
        sa.Column("linked_probabilistic", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.Column("deaths", sa.Integer(), nullable=False),
        sa.Column("out_dir", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["extract_id"],
            ["department_extracts.extract_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_comparison_runs_department"), "comparison_runs", ["department"], unique=False
    )
    op.create_index(op.f("ix_comparison_runs_run_at"), "comparison_runs", ["run_at"], unique=False)
    op.create_table(
        "department_extract_rows",
        sa.Column("extract_id", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("id_number", sa.String(length=32), nullable=False),
        sa.Column("id_valid", sa.Boolean(), nullable=False),
        sa.Column("sex", sa.String(length=1), nullable=False),
        sa.Column("birth_date", sa.String(length=10), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["extract_id"],
            ["department_extracts.extract_id"],
        ),
        sa.PrimaryKeyConstraint("extract_id", "line"),
    )
    op.create_table(
        "comparison_findings",
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
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("collected_value", sa.Text(), nullable=False),
        sa.Column("department_value", sa.Text(), nullable=False),
        sa.Column("department", sa.String(length=24), nullable=False),
        sa.Column("match_method", sa.String(length=16), nullable=False),
        sa.Column("match_score", sa.Float(), nullable=True),
        sa.Column("record_id", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["comparison_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_comparison_findings_run_id"), "comparison_findings", ["run_id"], unique=False
    )
    op.create_index(
        op.f("ix_comparison_findings_status"), "comparison_findings", ["status"], unique=False
    )
    op.create_index(
        op.f("ix_comparison_findings_township_code"),
        "comparison_findings",
        ["township_code"],
        unique=False,
    )
    op.create_table(
        "deceased_people",
        sa.Column("id_number", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("death_date", sa.String(length=10), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payment_stop", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["comparison_runs.id"],
        ),
        sa.PrimaryKeyConstraint("id_number"),
    )
    op.create_index(
        op.f("ix_deceased_people_payment_stop"), "deceased_people", ["payment_stop"], unique=False
    )
    op.create_index(
        op.f("ix_deceased_people_township_code"), "deceased_people", ["township_code"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_deceased_people_township_code"), table_name="deceased_people")
    op.drop_index(op.f("ix_deceased_people_payment_stop"), table_name="deceased_people")
    op.drop_table("deceased_people")
    op.drop_index(op.f("ix_comparison_findings_township_code"), table_name="comparison_findings")
    op.drop_index(op.f("ix_comparison_findings_status"), table_name="comparison_findings")
    op.drop_index(op.f("ix_comparison_findings_run_id"), table_name="comparison_findings")
    op.drop_table("comparison_findings")
    op.drop_table("department_extract_rows")
    op.drop_index(op.f("ix_comparison_runs_run_at"), table_name="comparison_runs")
    op.drop_index(op.f("ix_comparison_runs_department"), table_name="comparison_runs")
    op.drop_table("comparison_runs")
    op.drop_index(op.f("ix_department_extracts_imported_at"), table_name="department_extracts")
    op.drop_index(op.f("ix_department_extracts_department"), table_name="department_extracts")
    op.drop_table("department_extracts")
