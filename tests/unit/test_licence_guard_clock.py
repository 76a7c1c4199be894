"""The licence guard on the device's clock (S-06): expiry, days left and clock rollback are
decided by the clock the daemon hands down, so a year of a licence's life runs here in
virtual time, on any calendar date."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.fingerprint import hashed_fingerprint, raw_fingerprint
from edge.identity import Enrolment, IdentityStore
from edge.licence_guard import ROLLBACK_TOLERANCE, LicenceGuard
from muster.clock import VirtualClock
from muster.crypto import generate_licence_authority_key, licence_public_bytes
from muster.licence import Licence, sign_licence

ISSUED = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SEED = "unit-device"
SALT = bytes.fromhex("73" * 16)
DEVICE = "370902001000-K7QF2M"


def licence(*, days: int = 365, serial: str = "01") -> Licence:
    """A licence for this test's device, bound to its (simulated) hardware, from ISSUED."""
    return Licence(
        device_id=DEVICE,
        township_code="370902001000",
        profile="simulator",
        not_before=ISSUED,
        not_after=ISSUED + timedelta(days=days),
        fingerprint=hashed_fingerprint(raw_fingerprint(SEED), SALT),
        features=("collect",),
        serial=serial,
        issued_at=ISSUED,
    )


@pytest.fixture
def store(tmp_path: Path) -> IdentityStore:
    """A device holding a 365-day licence bound to its (simulated) hardware."""
    authority = generate_licence_authority_key()
    store = IdentityStore(tmp_path)
    store.save(
        key_pem=b"unused here",
        cert_pem=b"unused here",
        ca_pem=b"unused here",
        licence=sign_licence(licence(), authority),
        enrolment=Enrolment(
            device_id=DEVICE,
            township_code="370902001000",
            profile="simulator",
            mqtt_url="mqtt://x:1",
            data_endpoint="x:2",
            licence_authority_key=licence_public_bytes(authority).hex(),
            fingerprint_salt=SALT.hex(),
        ),
    )
    return store


def guard(store: IdentityStore, clock: VirtualClock) -> LicenceGuard:
    return LicenceGuard(store, simulated_seed=SEED, clock=clock)


def test_days_left_count_down_and_expiry_refuses_on_the_clock(store: IdentityStore) -> None:
    """Days left follow the handed-down clock; the day the licence ends, collection stops with
    the reason "expired" — whatever the machine's real date is."""
    clock = VirtualClock(ISSUED + timedelta(hours=1))
    licence_guard = guard(store, clock)
    assert licence_guard.check().allowed
    assert licence_guard.verdict.days_left == 364

    clock.advance_now(timedelta(days=300).total_seconds())
    verdict = licence_guard.check()
    assert verdict.allowed and verdict.days_left == 64

    clock.advance_now(timedelta(days=65).total_seconds())
    verdict = licence_guard.check()
    assert not verdict.allowed
    assert verdict.reason == "expired"
    assert "过期" in verdict.message


def test_turning_the_clock_back_stops_collection(store: IdentityStore) -> None:
    """A clock set back by more than the tolerance is a rollback (an expired licence cannot be
    revived by changing the date); within the tolerance, NTP's small steps are accepted."""
    clock = VirtualClock(ISSUED + timedelta(days=30))
    licence_guard = guard(store, clock)
    assert licence_guard.check().allowed

    clock.set_wall(clock.now() - ROLLBACK_TOLERANCE / 2)
    assert licence_guard.check().allowed, "a small NTP step back is not a rollback"

    clock.set_wall(ISSUED + timedelta(days=2))
    verdict = licence_guard.check()
    assert not verdict.allowed
    assert verdict.reason == "clock_rollback"


def test_the_rollback_mark_survives_a_restart(store: IdentityStore) -> None:
    """The latest time seen is on disk: a restarted daemon (a new guard) with its clock turned
    back still refuses."""
    late = VirtualClock(ISSUED + timedelta(days=200))
    assert guard(store, late).check().allowed
    restarted = guard(store, VirtualClock(ISSUED + timedelta(days=10)))
    assert restarted.check().reason == "clock_rollback"
