"""Licence documents (S-06): only an untouched licence, for this device and this hardware, within
its validity, lets a device collect; every refusal names its reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from muster.crypto import generate_licence_authority_key
from muster.errors import LicenceError
from muster.licence import Licence, check_licence, decode_licence, sign_licence

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
FINGERPRINT = {
    "machine_id": "a1",
    "product_uuid": "b2",
    "primary_mac": "c3",
    "root_disk_serial": "d4",
    "cpu_model": "e5",
}
AUTHORITY = generate_licence_authority_key()
LICENCE = Licence(
    device_id="370902001000-K7QF2M",
    township_code="370902001000",
    profile="fixed-kiosk",
    not_before=NOW - timedelta(days=1),
    not_after=NOW + timedelta(days=365),
    fingerprint=FINGERPRINT,
    features=("collect",),
    serial="01",
    issued_at=NOW - timedelta(days=1),
)


def check(blob: bytes | None, **overrides: object) -> Licence:
    args: dict[str, object] = {
        "authority": AUTHORITY.public_key(),
        "device_id": LICENCE.device_id,
        "fingerprint": FINGERPRINT,
        "now": NOW,
    }
    args.update(overrides)
    return check_licence(blob, **args)  # type: ignore[arg-type]


def reason(blob: bytes | None, **overrides: object) -> str:
    with pytest.raises(LicenceError) as info:
        check(blob, **overrides)
    assert str(info.value), "every refusal carries an operator message"
    return info.value.reason


def test_valid_licence_round_trips() -> None:
    """A signed licence decodes to exactly what was signed and lets the device collect."""
    blob = sign_licence(LICENCE, AUTHORITY)
    assert decode_licence(blob, AUTHORITY.public_key()) == LICENCE
    assert check(blob).days_left(NOW) == 365


def test_one_changed_component_is_tolerated_two_are_not() -> None:
    """A replaced NIC keeps the licence; a replaced NIC and disk do not."""
    blob = sign_licence(LICENCE, AUTHORITY)
    one = {**FINGERPRINT, "primary_mac": "zz"}
    two = {**one, "root_disk_serial": "yy"}
    assert check(blob, fingerprint=one)
    assert reason(blob, fingerprint=two) == "fingerprint_mismatch"


def test_copied_to_another_machine_is_refused() -> None:
    """A licence copied to different hardware fails the fingerprint check."""
    blob = sign_licence(LICENCE, AUTHORITY)
    other = {k: v + "-other" for k, v in FINGERPRINT.items()}
    assert reason(blob, fingerprint=other) == "fingerprint_mismatch"


def test_every_single_byte_change_is_refused() -> None:
    """Changing any one byte of the licence file makes it tampered (or, at worst, unparseable)."""
    blob = sign_licence(LICENCE, AUTHORITY)
    for i in range(0, len(blob) - 1):  # the final newline is not significant
        forged = bytearray(blob)
        forged[i] ^= 0x01
        assert reason(bytes(forged)) == "tampered", f"byte {i} changed and accepted"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"now": NOW + timedelta(days=366)}, "expired"),
        ({"now": NOW - timedelta(days=2)}, "not_yet_valid"),
        ({"revoked": True}, "revoked"),
        ({"device_id": "370902001000-OTHER1"}, "wrong_device"),
        ({"authority": generate_licence_authority_key().public_key()}, "tampered"),
    ],
)
def test_refusals(overrides: dict[str, object], expected: str) -> None:
    """Expired, not yet valid, revoked, another device's, another authority's: each refused by name."""
    assert reason(sign_licence(LICENCE, AUTHORITY), **overrides) == expected


def test_missing_licence() -> None:
    """No licence file at all is its own reason."""
    assert reason(None) == "missing"


def test_features_are_signed() -> None:
    """Adding a feature the device did not pay for breaks the signature."""
    blob = sign_licence(LICENCE, AUTHORITY)
    upgraded = sign_licence(replace(LICENCE, features=("collect", "generic-device")), AUTHORITY)
    body = upgraded.split(b"\n")[1]
    forged = b"\n".join([blob.split(b"\n")[0], body, blob.split(b"\n")[2]]) + b"\n"
    assert reason(forged) == "tampered"
