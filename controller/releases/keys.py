"""The release key: Ed25519, kept apart from the CA and the licence-authority key, under
``DATA_DIR/pki/release/v{N}.key`` (0600, created once). Rotation adds ``v{N+1}.key`` with
``v{N+1}.endorsement``, the old key's signature over the new public key, so a device that
trusts the old key learns to trust the new one from the offer itself (muster.releases)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from muster.crypto import (
    LicenceAuthorityKey,
    generate_licence_authority_key,
    load_licence_authority_key,
    write_private_key,
    write_public_file,
)
from muster.releases import endorse_key, key_id, public_key_bytes

__all__ = ["ReleaseKeyEntry", "ReleaseKeyring", "load_release_keys", "rotate_release_key"]


@dataclass(frozen=True, slots=True)
class ReleaseKeyEntry:
    version: int
    key: LicenceAuthorityKey
    endorsed_by: str  # key id of the key before it; "" for the first
    endorsement: bytes

    @property
    def key_id(self) -> str:
        return key_id(self.key)

    @property
    def public(self) -> bytes:
        return public_key_bytes(self.key)


@dataclass(frozen=True, slots=True)
class ReleaseKeyring:
    entries: tuple[ReleaseKeyEntry, ...]  # oldest first

    @property
    def signing(self) -> ReleaseKeyEntry:
        return self.entries[-1]

    def trusted(self) -> dict[str, bytes]:
        return {e.key_id: e.public for e in self.entries}


def _directory(pki_dir: Path) -> Path:
    return pki_dir / "release"


def load_release_keys(pki_dir: Path) -> ReleaseKeyring:
    """Every release key version; the first is created when there is none."""
    directory = _directory(pki_dir)
    if not any(directory.glob("v*.key")):
        write_private_key(directory / "v1.key", generate_licence_authority_key())
    entries: list[ReleaseKeyEntry] = []
    for path in sorted(directory.glob("v*.key"), key=lambda p: int(p.stem[1:])):
        key = load_licence_authority_key(path)
        endorsement_path = path.with_suffix(".endorsement")
        endorsement = endorsement_path.read_bytes() if endorsement_path.exists() else b""
        endorsed_by = entries[-1].key_id if entries else ""
        entries.append(ReleaseKeyEntry(int(path.stem[1:]), key, endorsed_by, endorsement))
    return ReleaseKeyring(tuple(entries))


def rotate_release_key(pki_dir: Path) -> ReleaseKeyEntry:
    """A new release key, endorsed by the current one; releases signed by older keys stay valid.
    The endorsement is written before the key, so a crash between leaves no unendorsed key."""
    ring = load_release_keys(pki_dir)
    new = generate_licence_authority_key()
    version = ring.signing.version + 1
    path = _directory(pki_dir) / f"v{version}.key"
    write_public_file(
        path.with_suffix(".endorsement"), endorse_key(ring.signing.key, public_key_bytes(new))
    )
    write_private_key(path, new)
    return load_release_keys(pki_dir).signing
