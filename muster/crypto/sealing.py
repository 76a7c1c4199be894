"""Sealed records: what a device uploads and can no longer read.

A record is encrypted to the centre's upload key (ephemeral X25519, HKDF-SHA256, AES-256-GCM)
with the record id, device id, schema version and key version bound as associated data, then
signed by the device's P-256 key over every field. ``open_record`` fails with one opaque
``SealError`` whatever went wrong, so a probe learns nothing from the error.

Attachments (photo, signature, scanned sheet) are sealed apart from their record with the same
recipe, in chunks of at most ``ATTACHMENT_CHUNK_BYTES`` of plaintext, so a record stays small and
a photo travels in pieces a stream can interleave. Their associated data binds record id, device
id, attachment name, key version and the chunk's index and count: a chunk cannot be moved to
another record, attachment or position. The record names each attachment's SHA-256, so the
device's signature over the record covers the attachments too.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils, x25519
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

__all__ = [
    "ATTACHMENT_CHUNK_BYTES",
    "content_hash",
    "open_attachment",
    "open_record",
    "seal_attachment",
    "seal_record",
    "signing_input",
    "verify_record",
]

_AAD_LABEL = b"muster.v1.seal\x00"
_SIGN_LABEL = b"muster.v1.SealedRecord\x00"
_HKDF_INFO = b"muster.v1.seal.aes256gcm"
_ATTACHMENT_AAD_LABEL = b"muster.v1.attachment\x00"
_ATTACHMENT_HKDF_INFO = b"muster.v1.attachment.aes256gcm"

ATTACHMENT_CHUNK_BYTES = 256 * 1024
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# The signed bytes are hashed once, for the content hash, and the signature checked against
# that digest: the same ECDSA-SHA256 check, one SHA-256 of the record fewer (about 14 us).
_ECDSA_PREHASHED = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
_RECIPIENT_PUBLIC: dict[int, tuple[UploadPrivateKey, bytes]] = {}


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


def _derive_key(
    shared: bytes, ephemeral_public: bytes, recipient_public: bytes, info: bytes = _HKDF_INFO
) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_public + recipient_public,
        info=info,
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
    sealed.signature = signing_key.sign(signing_input(sealed), _ECDSA_SHA256)
    return sealed


def verify_record(sealed: data_pb2.SealedRecord, device_key: DevicePublicKey) -> str:
    """Check the device's signature; raises ``SignatureError`` when it does not hold. Returns
    the record's ``content_hash`` (taken over the same signed bytes, built once for both)."""
    digest = hashlib.sha256(signing_input(sealed)).digest()
    try:
        device_key.verify(sealed.signature, digest, _ECDSA_PREHASHED)
    except InvalidSignature:
        raise SignatureError(
            f"record {sealed.record_id}: the device signature does not verify"
        ) from None
    return digest.hex()


def _recipient_public(key: UploadPrivateKey) -> bytes:
    """The upload key's public half, derived once per key object (it is in every HKDF salt)."""
    cached = _RECIPIENT_PUBLIC.get(id(key))
    if cached is None or cached[0] is not key:
        cached = (key, upload_public_bytes(key))
        # A handful of key versions live for the process; the key is held here so its id()
        # cannot be reused by another object while the entry exists.
        if len(_RECIPIENT_PUBLIC) > 64:
            _RECIPIENT_PUBLIC.clear()
        _RECIPIENT_PUBLIC[id(key)] = cached
    return cached[1]


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
            key.exchange(peer), sealed.ephemeral_public_key, _recipient_public(key)
        )
        aad = _aad(sealed.record_id, sealed.device_id, sealed.schema_version, sealed.key_version)
        return AESGCM(aes_key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except (InvalidTag, ValueError):
        raise SealError("sealed record cannot be opened") from None


def _attachment_aad(
    record_id: str, device_id: str, name: str, key_version: int, index: int, count: int
) -> bytes:
    return (
        _ATTACHMENT_AAD_LABEL
        + _lp(record_id.encode())
        + _lp(device_id.encode())
        + _lp(name.encode())
        + struct.pack(">III", key_version, index, count)
    )


def seal_attachment(
    plaintext: bytes,
    *,
    record_id: str,
    device_id: str,
    name: str,
    upload_key: UploadPublicKey,
    key_version: int,
    chunk_bytes: int = ATTACHMENT_CHUNK_BYTES,
) -> list[data_pb2.AttachmentChunk]:
    """Seal one attachment to the upload key as chunks of at most ``chunk_bytes`` plaintext.

    An empty attachment is one empty chunk, so every attachment has at least one.
    """
    if not 0 < chunk_bytes <= ATTACHMENT_CHUNK_BYTES:
        raise ValueError(f"chunk size must be 1..{ATTACHMENT_CHUNK_BYTES} bytes")
    ephemeral = x25519.X25519PrivateKey.generate()
    ephemeral_public = upload_public_bytes(ephemeral)
    aes = AESGCM(
        _derive_key(
            ephemeral.exchange(upload_key),
            ephemeral_public,
            upload_public_bytes(upload_key),
            _ATTACHMENT_HKDF_INFO,
        )
    )
    pieces = [plaintext[i : i + chunk_bytes] for i in range(0, len(plaintext), chunk_bytes)]
    pieces = pieces or [b""]
    chunks = []
    for index, piece in enumerate(pieces):
        nonce = os.urandom(12)
        aad = _attachment_aad(record_id, device_id, name, key_version, index, len(pieces))
        chunks.append(
            data_pb2.AttachmentChunk(
                record_id=record_id,
                device_id=device_id,
                name=name,
                key_version=key_version,
                index=index,
                count=len(pieces),
                ephemeral_public_key=ephemeral_public,
                nonce=nonce,
                ciphertext=aes.encrypt(nonce, piece, aad),
            )
        )
    return chunks


def open_attachment(
    chunks: Sequence[data_pb2.AttachmentChunk], upload_keys: Mapping[int, UploadPrivateKey]
) -> bytes:
    """Join and decrypt every chunk of one attachment, given in index order.

    Raises one opaque ``SealError`` when a chunk is missing, foreign, reordered or tampered with.
    """
    if not chunks:
        raise SealError("attachment cannot be opened")
    first = chunks[0]
    key = upload_keys.get(first.key_version)
    if key is None or len(chunks) != first.count:
        raise SealError("attachment cannot be opened")
    try:
        peer = x25519.X25519PublicKey.from_public_bytes(first.ephemeral_public_key)
        aes = AESGCM(
            _derive_key(
                key.exchange(peer),
                first.ephemeral_public_key,
                _recipient_public(key),
                _ATTACHMENT_HKDF_INFO,
            )
        )
        parts = []
        for index, chunk in enumerate(chunks):
            if chunk.ephemeral_public_key != first.ephemeral_public_key:
                raise SealError("attachment cannot be opened")
            # The AAD is built from the expected position, not the chunk's own claim of it.
            aad = _attachment_aad(
                first.record_id, first.device_id, first.name, first.key_version, index, first.count
            )
            parts.append(aes.decrypt(chunk.nonce, chunk.ciphertext, aad))
        return b"".join(parts)
    except (InvalidTag, ValueError):
        raise SealError("attachment cannot be opened") from None
