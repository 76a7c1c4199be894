"""Departments' extracts, comparison runs with their findings, and the deceased they show
(``controller.comparison``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from controller.db.models.base import Base

__all__ = [
    "ComparisonFinding",
    "ComparisonRun",
    "DeceasedPerson",
    "DepartmentExtract",
    "DepartmentExtractRow",
]


class DepartmentExtract(Base):
    """A department's extract as imported (controller/comparison/extracts.py): once per content,
    named by the SHA-256 of its department, region and accepted rows."""

    __tablename__ = "department_extracts"

    extract_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    department: Mapped[str] = mapped_column(String(24), index=True)
    region_prefix: Mapped[str] = mapped_column(String(12), default="")
    file_name: Mapped[str] = mapped_column(String(300))
    rows: Mapped[int] = mapped_column(Integer)
    rejected: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(index=True)


class DepartmentExtractRow(Base):
    """One accepted row of an extract (``muster.departments.DepartmentPerson``)."""

    __tablename__ = "department_extract_rows"

    extract_id: Mapped[str] = mapped_column(
        ForeignKey("department_extracts.extract_id"), primary_key=True
    )
    line: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    id_number: Mapped[str] = mapped_column(String(32), default="")
    id_valid: Mapped[bool] = mapped_column(Boolean, default=False)
    sex: Mapped[str] = mapped_column(String(1))
    birth_date: Mapped[str] = mapped_column(String(10))
    address: Mapped[str] = mapped_column(Text, default="")
    township_code: Mapped[str] = mapped_column(String(12), default="")
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ComparisonRun(Base):
    """One comparison of an extract with the collected records: who ran it, when, on what."""

    __tablename__ = "comparison_runs"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    department: Mapped[str] = mapped_column(String(24), index=True)
    region_prefix: Mapped[str] = mapped_column(String(12), default="")
    extract_id: Mapped[str] = mapped_column(ForeignKey("department_extracts.extract_id"))
    collected_source: Mapped[str] = mapped_column(String(300))
    engine: Mapped[str] = mapped_column(String(8))
    run_by: Mapped[str] = mapped_column(String(64))
    run_at: Mapped[datetime] = mapped_column(index=True)
    department_rows: Mapped[int] = mapped_column(Integer)
    collected_rows: Mapped[int] = mapped_column(Integer)
    linked_exact: Mapped[int] = mapped_column(Integer)
    linked_probabilistic: Mapped[int] = mapped_column(Integer)
    problems: Mapped[int] = mapped_column(Integer)
    missing: Mapped[int] = mapped_column(Integer)
    deaths: Mapped[int] = mapped_column(Integer)
    out_dir: Mapped[str] = mapped_column(String(300), default="")


class ComparisonFinding(Base):
    """A problem (a field disagrees) or a missing person found by a run, with the township that
    owns the person: what an admin turns into a task for that township's devices. ``status``
    is open / sent / closed / disputed."""

    __tablename__ = "comparison_findings"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[int] = mapped_column(ForeignKey("comparison_runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # problem | missing
    township_code: Mapped[str] = mapped_column(String(12), default="", index=True)
    id_number: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(32), default="")
    collected_value: Mapped[str] = mapped_column(Text, default="")
    department_value: Mapped[str] = mapped_column(Text, default="")
    department: Mapped[str] = mapped_column(String(24))
    match_method: Mapped[str] = mapped_column(String(16), default="")
    match_score: Mapped[float | None] = mapped_column(Float, default=None)
    record_id: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    status_at: Mapped[datetime] = mapped_column()


class DeceasedPerson(Base):
    """A person the funeral records show dead (S-23): the date, where it came from, and where the
    payment stop stands. The person's records are never deleted."""

    __tablename__ = "deceased_people"

    id_number: Mapped[str] = mapped_column(String(18), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    township_code: Mapped[str] = mapped_column(String(12), default="", index=True)
    death_date: Mapped[str] = mapped_column(String(10))
    run_id: Mapped[int] = mapped_column(ForeignKey("comparison_runs.id"))
    recorded_at: Mapped[datetime] = mapped_column()
    payment_stop: Mapped[str] = mapped_column(String(10), default="pending", index=True)
