"""Rollouts on PostgreSQL: the same waves, soak and heartbeat gate, failure pause, retries and
hand retries as tests/unit/test_rollouts.py runs on SQLite, here on the real server the
production controller uses (its row locks, its JSON and timestamp types, its count-and-join of
the fault events)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.devices.enrolment import publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from tests.unit.conftest import NOW
from tests.unit.test_rollouts import (
    test_a_failing_wave_pauses_with_an_alert_that_only_resume_resolves,
    test_a_reader_fault_after_the_update_fails_the_device_and_pauses_the_rollout,
    test_a_release_fault_is_not_retried_by_itself_but_an_admin_can_retry_the_device,
    test_a_transient_failure_is_retried_with_backoff_then_given_up_with_its_reason,
    test_bad_retries_are_refused_and_change_nothing,
    test_uploads_not_flowing_or_a_reader_in_fault_on_the_new_version_fail_the_device,
    test_waves_open_one_after_another_after_the_soak,
)

__all__ = [
    "test_a_failing_wave_pauses_with_an_alert_that_only_resume_resolves",
    "test_a_reader_fault_after_the_update_fails_the_device_and_pauses_the_rollout",
    "test_a_release_fault_is_not_retried_by_itself_but_an_admin_can_retry_the_device",
    "test_a_transient_failure_is_retried_with_backoff_then_given_up_with_its_reason",
    "test_bad_retries_are_refused_and_change_nothing",
    "test_uploads_not_flowing_or_a_reader_in_fault_on_the_new_version_fail_the_device",
    "test_waves_open_one_after_another_after_the_soak",
]


@pytest.fixture
def pki(tmp_path: Path) -> ControllerPki:
    return ensure_controller_pki(tmp_path / "ctl", ["127.0.0.1", "localhost"], now=NOW)


@pytest.fixture
def sessions(postgres_url: str, pki: ControllerPki) -> Iterator[sessionmaker[Session]]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    factory = session_factory(engine)
    with factory.begin() as session:
        publish_upload_keys(session, pki, NOW)
    yield factory
    engine.dispose()
