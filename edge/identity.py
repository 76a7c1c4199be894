"""What makes a device a member of the fleet, kept under ``STATE_DIR/identity``: its key (0600),
its certificate and the CA's, its licence, the licence authority's public key, and what the
controller told it at enrolment (township, profile, endpoints, upload keys)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from muster.crypto import DeviceKey, load_device_key, write_public_file, write_secret_file
from muster.errors import ConfigError


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


class IdentityStore:
    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "identity"

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
