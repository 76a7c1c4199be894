"""Slice encryption: a township's initial data, readable only by the device it was cut for.

- A fresh 256-bit data key per transfer encrypts the chunks (AES-256-GCM, associated data binds
  township, versions, device and chunk index, so chunks cannot be reordered or spliced).
- The data key is wrapped to the device's certificate key: ephemeral ECDH P-256, HKDF-SHA256
  (salt = both public points), AES-256-GCM. Only the holder of the device key unwraps it.
- At rest the device keeps each person encrypted under a local key (AES-256-GCM), indexed by an
  HMAC-SHA256 of the ID number, so the file alone reveals neither names nor ID numbers.

Every failure to open is one opaque ``SealError``.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from muster.crypto.keys import DeviceKey, DevicePublicKey
from muster.errors import SealError

_WRAP_INFO = b"muster.v1.slice.wrap"

__all__ = [
    "at_rest_index",
    "close_at_rest",
    "new_data_key",
    "open_at_rest",
    "open_chunk",
    "seal_chunk",
    "unwrap_data_key",
    "wrap_data_key",
]


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _wrap_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_WRAP_INFO
    ).derive(shared)


def wrap_data_key(
    data_key: bytes, recipient: DevicePublicKey, aad: bytes
) -> tuple[bytes, bytes, bytes]:
    """(ephemeral public point, nonce, wrapped key) for ``recipient``."""
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    ephemeral_point = _point(ephemeral.public_key())
    kek = _wrap_key(ephemeral.exchange(ec.ECDH(), recipient), ephemeral_point, _point(recipient))
    nonce = os.urandom(12)
    return ephemeral_point, nonce, AESGCM(kek).encrypt(nonce, data_key, aad)


def unwrap_data_key(
    device_key: DeviceKey, ephemeral_point: bytes, nonce: bytes, wrapped: bytes, aad: bytes
) -> bytes:
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ephemeral_point)
        kek = _wrap_key(
            device_key.exchange(ec.ECDH(), peer), ephemeral_point, _point(device_key.public_key())
        )
        return AESGCM(kek).decrypt(nonce, wrapped, aad)
    except (InvalidTag, ValueError):
        raise SealError("slice key cannot be opened") from None


def seal_chunk(data_key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(12)
    return nonce, AESGCM(data_key).encrypt(nonce, plaintext, aad)


def open_chunk(data_key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(data_key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError):
        raise SealError("slice chunk cannot be opened") from None


def at_rest_index(local_key: bytes, id_number: str) -> str:
    return hmac.new(local_key, b"index\x00" + id_number.encode(), hashlib.sha256).hexdigest()


def close_at_rest(local_key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(local_key).encrypt(nonce, plaintext, aad)


def open_at_rest(local_key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(local_key).decrypt(blob[:12], blob[12:], aad)
    except (InvalidTag, ValueError):
        raise SealError("stored slice entry cannot be opened") from None
