"""Cryptography as recipes. This package is the only place that touches ``cryptography.hazmat``.

- ``seal_record`` / ``open_record`` / ``verify_record``: records a device uploads and cannot read.
- ``seal_attachment`` / ``open_attachment``: a record's photo and signature, sealed in chunks.
- ``pki``: the controller's CA, device and server certificates.
- ``licence_signing``: Ed25519 over canonical licence documents.
"""

from muster.crypto.keys import (
    DeviceKey,
    DevicePublicKey,
    LicenceAuthorityKey,
    LicenceAuthorityPublicKey,
    UploadPrivateKey,
    UploadPublicKey,
    generate_device_key,
    generate_licence_authority_key,
    generate_upload_key,
    licence_public_bytes,
    licence_public_from_bytes,
    load_device_key,
    load_licence_authority_key,
    load_upload_private_key,
    private_key_pem,
    upload_public_bytes,
    upload_public_from_bytes,
    write_private_key,
    write_public_file,
    write_secret_file,
)
from muster.crypto.sealing import (
    ATTACHMENT_CHUNK_BYTES,
    content_hash,
    open_attachment,
    open_record,
    seal_attachment,
    seal_record,
    verify_record,
)
from muster.crypto.signing import sign_ed25519, verify_ed25519

__all__ = [
    "ATTACHMENT_CHUNK_BYTES",
    "DeviceKey",
    "DevicePublicKey",
    "LicenceAuthorityKey",
    "LicenceAuthorityPublicKey",
    "UploadPrivateKey",
    "UploadPublicKey",
    "content_hash",
    "generate_device_key",
    "generate_licence_authority_key",
    "generate_upload_key",
    "licence_public_bytes",
    "licence_public_from_bytes",
    "load_device_key",
    "load_licence_authority_key",
    "load_upload_private_key",
    "open_attachment",
    "open_record",
    "private_key_pem",
    "seal_attachment",
    "seal_record",
    "sign_ed25519",
    "upload_public_bytes",
    "upload_public_from_bytes",
    "verify_ed25519",
    "verify_record",
    "write_private_key",
    "write_public_file",
    "write_secret_file",
]
