"""Rotating the controller's CA and licence-authority key without cutting off the fleet, and the
device taking a renewed licence (signed by a rotated key) only when it would let it collect."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device
from controller.devices.licences import LicenceDesk
from controller.devices.pki_store import (
    ControllerPki,
    activate_next_ca,
    begin_ca_rotation,
    ensure_controller_pki,
    rotate_licence_key,
)
from edge.identity import IdentityStore
from edge.licence_guard import LicenceGuard
from edge.membership import Membership
from muster.clock import VirtualClock
from muster.crypto import generate_device_key, licence_public_bytes
from muster.crypto.pki import (
    build_csr,
    issue_device_certificate,
    load_certificate,
    load_certificates,
    verify_issued_by_any,
)
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import FINGERPRINT
from tests.unit.test_replacement import enrol_device

HOSTS = ["127.0.0.1", "localhost"]


def reload(pki: ControllerPki) -> ControllerPki:
    return ensure_controller_pki(pki.directory.parent, HOSTS, now=NOW)


def test_ca_rotation_keeps_old_devices_trusted_and_issues_from_the_new_ca(
    pki: ControllerPki,
) -> None:
    """Step one adds the new CA to the bundle without changing who issues; step two issues from
    it, reissues the server certificate, and old devices' certificates still verify."""
    old_device = issue_device_certificate(
        pki.ca_key, pki.ca_cert, build_csr(generate_device_key()), "dev-old", now=NOW
    )
    begin_ca_rotation(pki, now=NOW)
    step_one = reload(pki)
    assert step_one.ca_cert.serial_number == pki.ca_cert.serial_number
    assert len(load_certificates(step_one.trust_bundle_path.read_bytes())) == 2

    activate_next_ca(step_one)
    step_two = reload(step_one)
    assert step_two.ca_cert.serial_number != pki.ca_cert.serial_number
    bundle = load_certificates(step_two.trust_bundle_path.read_bytes())
    server = load_certificate(step_two.server_cert_path.read_bytes())
    assert verify_issued_by_any(server, [step_two.ca_cert], now=NOW) == "127.0.0.1"
    assert verify_issued_by_any(old_device, bundle, now=NOW) == "dev-old"
    for key in step_two.directory.rglob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key


def test_an_activation_interrupted_by_a_crash_is_finished_at_the_next_start(
    pki: ControllerPki,
) -> None:
    """kill -9 right after the old CA certificate was retired: the next start completes the
    switch instead of creating a third CA or losing the old one."""
    begin_ca_rotation(pki, now=NOW)
    next_serial = load_certificate((pki.directory / "ca-next.crt").read_bytes()).serial_number
    retired = pki.directory / "retired"
    retired.mkdir()
    (pki.directory / "ca.crt").replace(retired / f"ca-{pki.ca_cert.serial_number:x}.crt")
    recovered = reload(pki)
    assert recovered.ca_cert.serial_number == next_serial
    assert (retired / f"ca-{pki.ca_cert.serial_number:x}.key").exists()
    assert len(recovered.authorities) == 2


def test_renewal_after_a_licence_key_rotation_brings_the_new_key(
    sessions: sessionmaker[Session], pki: ControllerPki, tmp_path: Path
) -> None:
    """The old licence stays valid; the renewed one, signed by the new key, is installed with
    that key, and the device may still collect."""
    state = tmp_path / "dev"
    device_id = enrol_device(sessions, pki, state)
    store = IdentityStore(state)
    guard = LicenceGuard(store, simulated_seed=None, clock=VirtualClock(NOW))
    desk_fingerprint = guard.current_fingerprint()
    # The enrolment helper bound a fixed fingerprint; bind this machine's instead so the
    # guard's own check applies unchanged.
    with sessions.begin() as session:
        device = session.get(Device, device_id)
        assert device is not None
        device.fingerprint = {**desk_fingerprint, "salt": "73" * 16}
    rotate_licence_key(pki, now=NOW)
    rotated = reload(pki)
    later = NOW + timedelta(days=20)
    blob = LicenceDesk(
        sessions, rotated.licence_key, licence_days=365, clock=VirtualClock(later)
    ).renew(device_id, desk_fingerprint)
    membership = Membership(
        store,
        LicenceGuard(store, simulated_seed=None, clock=VirtualClock(later)),
        clock=VirtualClock(later),
    )
    message = membership.install(blob, licence_public_bytes(rotated.licence_key))
    assert "续期至" in message, message
    assert (
        store.enrolment().licence_authority_key == licence_public_bytes(rotated.licence_key).hex()
    )
    assert LicenceGuard(store, simulated_seed=None, clock=VirtualClock(later)).check().allowed


def test_a_renewed_licence_for_other_hardware_is_not_installed(
    sessions: sessionmaker[Session], pki: ControllerPki, tmp_path: Path
) -> None:
    """A licence that would not let this device collect never replaces the one on disk."""
    state = tmp_path / "dev"
    device_id = enrol_device(sessions, pki, state)
    store = IdentityStore(state)
    before = store.licence()
    blob = LicenceDesk(sessions, pki.licence_key, licence_days=365, clock=VirtualClock(NOW)).renew(
        device_id, FINGERPRINT
    )
    membership = Membership(
        store,
        LicenceGuard(store, simulated_seed=None, clock=VirtualClock(NOW)),
        clock=VirtualClock(NOW),
    )
    message = membership.install(blob, licence_public_bytes(pki.licence_key))
    assert "仍使用原授权" in message
    assert store.licence() == before
