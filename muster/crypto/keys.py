"""Key pairs: generation, serialisation, and files that hold private keys (created 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from muster.errors import ConfigError, CryptoError

__all__ = [
    "DeviceKey",
    "DevicePublicKey",
    "LicenceAuthorityKey",
    "LicenceAuthorityPublicKey",
    "UploadPrivateKey",
    "UploadPublicKey",
    "generate_device_key",
    "generate_licence_authority_key",
    "generate_upload_key",
    "licence_public_bytes",
    "licence_public_from_bytes",
    "load_device_key",
    "load_licence_authority_key",
    "load_private_key",
    "load_upload_private_key",
    "private_key_pem",
    "upload_public_bytes",
    "upload_public_from_bytes",
    "write_private_key",
    "write_public_file",
    "write_secret_file",
]

DeviceKey = ec.EllipticCurvePrivateKey
DevicePublicKey = ec.EllipticCurvePublicKey
UploadPrivateKey = x25519.X25519PrivateKey
UploadPublicKey = x25519.X25519PublicKey
LicenceAuthorityKey = ed25519.Ed25519PrivateKey
LicenceAuthorityPublicKey = ed25519.Ed25519PublicKey


def generate_device_key() -> DeviceKey:
    return ec.generate_private_key(ec.SECP256R1())


def generate_upload_key() -> UploadPrivateKey:
    return x25519.X25519PrivateKey.generate()


def generate_licence_authority_key() -> LicenceAuthorityKey:
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: DeviceKey | UploadPrivateKey | LicenceAuthorityKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: Path, key: DeviceKey | UploadPrivateKey | LicenceAuthorityKey) -> None:
    """Write a private key so that no other user can ever read it, not even for an instant.

    The file is created 0600 by ``os.open`` (not chmod after the fact), written to a temporary
    name, fsynced and renamed, so a crash leaves either the old key or the new one.
    """
    write_secret_file(path, private_key_pem(key))


def write_secret_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    _fsync_dir(path.parent)


def write_public_file(path: Path, data: bytes) -> None:
    """Durable write of a non-secret file (certificates, licences): temp, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_private_key(path: Path) -> DeviceKey | UploadPrivateKey | LicenceAuthorityKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"private key {path} is missing") from None
    except ValueError as exc:
        raise CryptoError(f"private key {path} is not a PEM private key") from exc
    if isinstance(
        key, ec.EllipticCurvePrivateKey | x25519.X25519PrivateKey | ed25519.Ed25519PrivateKey
    ):
        return key
    raise CryptoError(f"private key {path} is of an unsupported type {type(key).__name__}")


def load_device_key(path: Path) -> DeviceKey:
    key = load_private_key(path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CryptoError(f"{path} does not hold a P-256 device key")
    return key


def load_upload_private_key(path: Path) -> UploadPrivateKey:
    key = load_private_key(path)
    if not isinstance(key, x25519.X25519PrivateKey):
        raise CryptoError(f"{path} does not hold an X25519 upload key")
    return key


def load_licence_authority_key(path: Path) -> LicenceAuthorityKey:
    key = load_private_key(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise CryptoError(f"{path} does not hold an Ed25519 licence-authority key")
    return key


def upload_public_bytes(key: UploadPrivateKey | UploadPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, x25519.X25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def upload_public_from_bytes(raw: bytes) -> UploadPublicKey:
    try:
        return x25519.X25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise CryptoError("upload public key must be 32 raw bytes") from exc


def licence_public_bytes(key: LicenceAuthorityKey | LicenceAuthorityPublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def licence_public_from_bytes(raw: bytes) -> LicenceAuthorityPublicKey:
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise CryptoError("licence-authority public key must be 32 raw bytes") from exc
