"""Sealed records: what a device uploads and can no longer read.

A record is encrypted to the centre's upload key (ephemeral X25519, HKDF-SHA256, AES-256-GCM)
with the record id, device id, schema version and key version bound as associated data, then
signed by the device's P-256 key over every field. ``open_record`` fails with one opaque
``SealError`` whatever went wrong, so a probe learns nothing from the error.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from muster.crypto.keys import (
    DeviceKey,
    DevicePublicKey,
    UploadPrivateKey,
    UploadPublicKey,
    upload_public_bytes,
)
from muster.errors import SealError, SignatureError
from muster.v1 import data_pb2

_AAD_LABEL = b"muster.v1.seal\x00"
_SIGN_LABEL = b"muster.v1.SealedRecord\x00"
_HKDF_INFO = b"muster.v1.seal.aes256gcm"


def _lp(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _aad(record_id: str, device_id: str, schema_version: str, key_version: int) -> bytes:
    return (
        _AAD_LABEL
        + _lp(record_id.encode())
        + _lp(device_id.encode())
        + _lp(schema_version.encode())
        + struct.pack(">I", key_version)
    )


def _derive_key(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_public + recipient_public,
        info=_HKDF_INFO,
    ).derive(shared)


def signing_input(sealed: data_pb2.SealedRecord) -> bytes:
    """The exact bytes the device signs: every field but the signature, length-prefixed."""
    return (
        _SIGN_LABEL
        + _lp(sealed.record_id.encode())
        + _lp(sealed.device_id.encode())
        + _lp(sealed.schema_version.encode())
        + struct.pack(">I", sealed.key_version)
        + _lp(sealed.ephemeral_public_key)
        + _lp(sealed.nonce)
        + _lp(sealed.ciphertext)
        + struct.pack(">qi", sealed.sealed_at.seconds, sealed.sealed_at.nanos)
    )


def content_hash(sealed: data_pb2.SealedRecord) -> str:
    """Identity of a sealed record's content: a resend of the same sealed bytes has the same hash.

    Taken over the ciphertext side, never the plaintext, so it reveals nothing about the record.
    """
    return hashlib.sha256(signing_input(sealed)).hexdigest()


def seal_record(
    plaintext: bytes,
    *,
    record_id: str,
    device_id: str,
    schema_version: str,
    upload_key: UploadPublicKey,
    key_version: int,
    signing_key: DeviceKey,
    now: datetime,
) -> data_pb2.SealedRecord:
    ephemeral = x25519.X25519PrivateKey.generate()
    ephemeral_public = upload_public_bytes(ephemeral)
    key = _derive_key(
        ephemeral.exchange(upload_key), ephemeral_public, upload_public_bytes(upload_key)
    )
    nonce = os.urandom(12)
    aad = _aad(record_id, device_id, schema_version, key_version)
    sealed = data_pb2.SealedRecord(
        record_id=record_id,
        device_id=device_id,
        schema_version=schema_version,
        key_version=key_version,
        ephemeral_public_key=ephemeral_public,
        nonce=nonce,
        ciphertext=AESGCM(key).encrypt(nonce, plaintext, aad),
    )
    sealed.sealed_at.FromDatetime(now.astimezone(UTC))
    sealed.signature = signing_key.sign(signing_input(sealed), ec.ECDSA(hashes.SHA256()))
    return sealed


def verify_record(sealed: data_pb2.SealedRecord, device_key: DevicePublicKey) -> None:
    """Check the device's signature; raises ``SignatureError`` when it does not hold."""
    try:
        device_key.verify(sealed.signature, signing_input(sealed), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(
            f"record {sealed.record_id}: the device signature does not verify"
        ) from None


def open_record(
    sealed: data_pb2.SealedRecord, upload_keys: Mapping[int, UploadPrivateKey]
) -> bytes:
    """Decrypt a sealed record with whichever upload key version it names."""
    key = upload_keys.get(sealed.key_version)
    if key is None:
        raise SealError("sealed record cannot be opened")
    try:
        peer = x25519.X25519PublicKey.from_public_bytes(sealed.ephemeral_public_key)
        aes_key = _derive_key(
            key.exchange(peer), sealed.ephemeral_public_key, upload_public_bytes(key)
        )
        aad = _aad(sealed.record_id, sealed.device_id, sealed.schema_version, sealed.key_version)
        return AESGCM(aes_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except (InvalidTag, ValueError):
        raise SealError("sealed record cannot be opened") from None
