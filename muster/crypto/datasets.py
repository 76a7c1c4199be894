"""Data sets sent up the hierarchy (S-08, S-11): encrypted to the upper level's X25519 key
(ephemeral X25519, HKDF-SHA256, AES-256-GCM, with the header bound as associated data), and
signed by the sending controller's Ed25519 key over header and ciphertext. Opening fails with
one opaque ``SealError`` whatever went wrong."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from muster.crypto.keys import UploadPrivateKey, UploadPublicKey, upload_public_bytes
from muster.errors import SealError

__all__ = ["open_dataset", "seal_dataset"]

_INFO = b"muster.v1.dataset.aes256gcm"


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO
    ).derive(shared)


def seal_dataset(
    recipient: UploadPublicKey, plaintext: bytes, aad: bytes
) -> tuple[bytes, bytes, bytes]:
    """(ephemeral public key, nonce, ciphertext)."""
    ephemeral = x25519.X25519PrivateKey.generate()
    ephemeral_public = upload_public_bytes(ephemeral.public_key())
    recipient_raw = upload_public_bytes(recipient)
    key = _key(ephemeral.exchange(recipient), ephemeral_public, recipient_raw)
    nonce = os.urandom(12)
    return ephemeral_public, nonce, AESGCM(key).encrypt(nonce, plaintext, aad)


def open_dataset(
    private: UploadPrivateKey, ephemeral_public: bytes, nonce: bytes, ciphertext: bytes, aad: bytes
) -> bytes:
    try:
        peer = x25519.X25519PublicKey.from_public_bytes(ephemeral_public)
        key = _key(private.exchange(peer), ephemeral_public, upload_public_bytes(private))
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise SealError("data set could not be opened") from exc
