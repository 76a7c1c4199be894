"""The schema comes from Alembic migrations only, and they match the models exactly."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from controller.db import make_engine, migrate
from controller.db.models import Base


def test_migrations_build_exactly_the_model_schema(tmp_path: Path) -> None:
    """After `upgrade head` autogenerate finds nothing to add, drop or alter."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"devices", "enrollment_codes", "upload_keys", "records", "device_events"} <= tables


def test_migrate_twice_is_harmless(tmp_path: Path) -> None:
    """Every controller start runs the migrations; the second run changes nothing."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    migrate(url)


def test_no_create_all_in_production_code() -> None:
    """Nothing outside the migrations creates tables ad hoc."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(p.relative_to(root))
        for package in ("muster", "edge", "controller", "provisioning")
        for p in (root / package).rglob("*.py")
        if "create_all(" in p.read_text(encoding="utf-8")
    ]
    assert offenders == []


def test_one_head() -> None:
    """The migration history ends in a single head, so a new migration has one parent."""
    from alembic.script import ScriptDirectory

    from controller.db.engine import alembic_config

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads() == ["0024"]
