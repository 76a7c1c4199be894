"""A controller database and key material in a temp dir, created the production way
(migrations, never create_all)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.devices.enrolment import publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def pki(tmp_path: Path) -> ControllerPki:
    return ensure_controller_pki(tmp_path / "ctl", ["127.0.0.1", "localhost"], now=NOW)


@pytest.fixture
def sessions(tmp_path: Path, pki: ControllerPki) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    with factory.begin() as session:
        publish_upload_keys(session, pki, NOW)
    yield factory
    engine.dispose()
