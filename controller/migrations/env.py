"""Alembic environment: the URL comes from the Config built by ``controller.db.engine``."""

from __future__ import annotations

from alembic import context

from controller.db.engine import make_engine
from controller.db.models import Base

config = context.config


def run_migrations_online() -> None:
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
