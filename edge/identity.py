"""What makes a device a member of the fleet, kept under ``STATE_DIR/identity``: its key (0600),
its certificate and the CA's, its licence, the licence authority's public key, and what the
controller told it at enrolment (township, profile, endpoints, upload keys).

The licence guard's own state lives twice: in files beside the licence (``clock.hwm``,
``revoked``) and in ``guard.sqlite3`` (``GuardLedger``), which also pins the licence authority's
key as enrolment delivered it. A copy deleted or edited on its own is noticed and put back from
the other (see ``edge/licence_guard.py``). This is tamper *evidence* against a careless or
partial edit, not protection: there is no TPM, so root on the device can rewrite both copies
and the device key together. What root cannot do is make the centre take records: the
controller checks revocation and licence expiry itself on every upload (controller/records/ingest.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from muster.crypto import DeviceKey, load_device_key, write_public_file, write_secret_file
from muster.errors import ConfigError

__all__ = ["Enrolment", "GuardLedger", "IdentityStore"]


@dataclass
class Enrolment:
    device_id: str
    township_code: str
    profile: str
    mqtt_url: str
    data_endpoint: str
    licence_authority_key: str  # hex
    fingerprint_salt: str  # hex
    upload_keys: dict[str, str] = field(default_factory=dict)  # version -> hex public key
    # The broker cluster's nodes the controller named, in order; empty for a controller that
    # names one broker (mqtt_url) and for identities saved before clusters.
    mqtt_urls: list[str] = field(default_factory=list)

    def broker_urls(self, configured: Sequence[str] = ()) -> list[str]:
        """Where telemetry goes: the nodes configured on this device (``--broker``), else the
        cluster the controller named at enrolment, else its one broker."""
        return list(configured) or list(self.mqtt_urls) or [self.mqtt_url]


class GuardLedger:
    """The licence guard's second copy of its state, one small SQLite table (``synchronous=FULL``):
    ``licence_authority_key`` (pinned at enrolment), ``high_water`` (ISO time), ``revoked``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS guard_state (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        return db

    def get(self, name: str) -> str | None:
        if not self.path.exists():
            return None
        db = self._connect()
        try:
            row = db.execute("SELECT value FROM guard_state WHERE name = ?", (name,)).fetchone()
        except sqlite3.DatabaseError:
            return None  # a corrupt ledger counts as a missing copy
        finally:
            db.close()
        return None if row is None else str(row[0])

    def put(self, name: str, value: str) -> None:
        db = self._connect()
        try:
            db.execute(
                "INSERT INTO guard_state (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )
        finally:
            db.close()


class IdentityStore:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.directory = state_dir / "identity"
        self.ledger = GuardLedger(self.directory / "guard.sqlite3")

    @property
    def key_path(self) -> Path:
        return self.directory / "device.key"

    @property
    def cert_path(self) -> Path:
        return self.directory / "device.crt"

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def licence_path(self) -> Path:
        return self.directory / "licence"

    @property
    def enrolment_path(self) -> Path:
        return self.directory / "enrolment.json"

    def is_enrolled(self) -> bool:
        return self.enrolment_path.exists() and self.cert_path.exists() and self.key_path.exists()

    def save(
        self,
        *,
        key_pem: bytes,
        cert_pem: bytes,
        ca_pem: bytes,
        licence: bytes,
        enrolment: Enrolment,
    ) -> None:
        """Write everything, the enrolment record last: its presence means the rest is complete."""
        write_secret_file(self.key_path, key_pem)
        write_public_file(self.cert_path, cert_pem)
        write_public_file(self.ca_path, ca_pem)
        write_public_file(self.licence_path, licence)
        # The trust anchor is pinned as enrolment (over server TLS, with a one-time code)
        # delivered it; later it changes only through ``rotate_authority_key``.
        self.ledger.put("licence_authority_key", enrolment.licence_authority_key)
        self.save_enrolment(enrolment)

    def pinned_authority_key(self) -> str:
        """The licence authority key (hex) this device trusts: the pinned one. A device enrolled
        before pinning existed pins what its enrolment record says, once (trust on first use)."""
        pinned = self.ledger.get("licence_authority_key")
        if pinned is None:
            pinned = self.enrolment().licence_authority_key
            self.ledger.put("licence_authority_key", pinned)
        return pinned

    def rotate_authority_key(self, key_hex: str) -> None:
        """Replace the trust anchor. Only for a key that came over the mutual-TLS channel from
        the controller (``Membership.install``), never from a file on the device."""
        self.ledger.put("licence_authority_key", key_hex)
        enrolment = self.enrolment()
        if enrolment.licence_authority_key != key_hex:
            enrolment.licence_authority_key = key_hex
            self.save_enrolment(enrolment)

    def save_enrolment(self, enrolment: Enrolment) -> None:
        write_public_file(self.enrolment_path, json.dumps(asdict(enrolment), indent=2).encode())

    def enrolment(self) -> Enrolment:
        try:
            return Enrolment(**json.loads(self.enrolment_path.read_text()))
        except FileNotFoundError:
            raise ConfigError(f"device is not enrolled ({self.enrolment_path} missing)") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                f"{self.enrolment_path} is corrupt: {exc}; enrol the device again"
            ) from exc

    def device_key(self) -> DeviceKey:
        return load_device_key(self.key_path)

    def licence(self) -> bytes | None:
        try:
            return self.licence_path.read_bytes()
        except FileNotFoundError:
            return None
