"""Sealing and signing core: what a device uploads can be opened only by the centre, and any
change to it is caught (S-08, S-13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from muster.crypto import (
    content_hash,
    generate_device_key,
    generate_upload_key,
    open_record,
    seal_record,
    verify_record,
)
from muster.errors import SealError, SignatureError
from muster.v1 import data_pb2

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
PLAINTEXT = '{"name": "张三", "id_number": "11010519491231002X"}'.encode()


@pytest.fixture
def keys() -> dict[str, object]:
    return {"device": generate_device_key(), "upload": generate_upload_key()}


def _seal(keys: dict[str, object], **overrides: object) -> data_pb2.SealedRecord:
    args: dict[str, object] = {
        "record_id": "rec-1",
        "device_id": "dev-1",
        "schema_version": "retired_soldier/1",
        "upload_key": keys["upload"].public_key(),  # type: ignore[attr-defined]
        "key_version": 3,
        "signing_key": keys["device"],
        "now": NOW,
    }
    args.update(overrides)
    return seal_record(PLAINTEXT, **args)  # type: ignore[arg-type]


def test_round_trip(keys: dict[str, object]) -> None:
    """A sealed record verifies with the device key and opens with the matching upload key version."""
    sealed = _seal(keys)
    verify_record(sealed, keys["device"].public_key())  # type: ignore[attr-defined]
    assert open_record(sealed, {3: keys["upload"]}) == PLAINTEXT  # type: ignore[dict-item]
    assert PLAINTEXT not in sealed.SerializeToString()


def test_content_hash_is_stable_for_resends_and_differs_between_seals(
    keys: dict[str, object],
) -> None:
    """A resend of the same sealed bytes has the same content hash; sealing again gives a new one."""
    sealed = _seal(keys)
    again = data_pb2.SealedRecord.FromString(sealed.SerializeToString())
    assert content_hash(again) == content_hash(sealed)
    assert content_hash(_seal(keys)) != content_hash(sealed)


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "ephemeral_public_key"])
def test_tampered_bytes_are_rejected(keys: dict[str, object], field: str) -> None:
    """Flipping one bit anywhere breaks both the signature and the decryption, with opaque errors."""
    sealed = _seal(keys)
    raw = bytearray(getattr(sealed, field))
    raw[len(raw) // 2] ^= 0x01
    setattr(sealed, field, bytes(raw))
    with pytest.raises(SignatureError):
        verify_record(sealed, keys["device"].public_key())  # type: ignore[attr-defined]
    with pytest.raises(SealError, match=r"^sealed record cannot be opened$"):
        open_record(sealed, {3: keys["upload"]})  # type: ignore[dict-item]


def test_wrong_upload_key_is_rejected(keys: dict[str, object]) -> None:
    """A record sealed to one upload key cannot be opened with another, even under the same version."""
    sealed = _seal(keys)
    with pytest.raises(SealError):
        open_record(sealed, {3: generate_upload_key()})
    with pytest.raises(SealError):
        open_record(sealed, {4: keys["upload"]})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("field", "value"),
    [("record_id", "rec-2"), ("device_id", "dev-2"), ("schema_version", "martyr_family/1")],
)
def test_wrong_associated_data_is_rejected(keys: dict[str, object], field: str, value: str) -> None:
    """Moving a ciphertext under another record id, device or schema makes it unopenable."""
    sealed = _seal(keys)
    setattr(sealed, field, value)
    with pytest.raises(SealError):
        open_record(sealed, {3: keys["upload"]})  # type: ignore[dict-item]


def test_signature_by_another_device_is_rejected(keys: dict[str, object]) -> None:
    """A record signed by one device does not verify under another device's key."""
    sealed = _seal(keys)
    with pytest.raises(SignatureError, match="rec-1"):
        verify_record(sealed, generate_device_key().public_key())
