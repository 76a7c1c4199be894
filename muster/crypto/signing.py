"""Ed25519 signatures for documents the licence authority issues."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature

from muster.crypto.keys import LicenceAuthorityKey, LicenceAuthorityPublicKey
from muster.errors import SignatureError

__all__ = ["sign_ed25519", "verify_ed25519"]


def sign_ed25519(key: LicenceAuthorityKey, message: bytes) -> bytes:
    return key.sign(message)


def verify_ed25519(key: LicenceAuthorityPublicKey, message: bytes, signature: bytes) -> None:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise SignatureError("the document's signature does not verify") from None
