"""The controller's key material on disk, created once and reused.

Layout under ``DATA_DIR/pki``: ``ca.key``/``ca.crt`` (signs device and server certificates),
``server.key``/``server.crt`` (gRPC and broker endpoints), ``controller-client.key/.crt`` (the
controller's own MQTT identity), ``licence-authority.key`` (Ed25519, signs licences) and
``upload/v{N}.key`` (X25519 upload keys; the newest is what devices seal to).
Private keys are created 0600 and never leave this directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from muster.crypto import (
    DeviceKey,
    LicenceAuthorityKey,
    UploadPrivateKey,
    generate_licence_authority_key,
    generate_upload_key,
    load_device_key,
    load_licence_authority_key,
    load_upload_private_key,
    write_private_key,
    write_public_file,
)
from muster.crypto.pki import (
    Certificate,
    certificate_pem,
    create_ca,
    issue_server_certificate,
    load_certificate,
)

CONTROLLER_MQTT_IDENTITY = "muster-controller"


@dataclass(frozen=True)
class ControllerPki:
    directory: Path
    ca_key: DeviceKey
    ca_cert: Certificate
    licence_key: LicenceAuthorityKey
    upload_keys: dict[int, UploadPrivateKey]

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server_cert_path(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key_path(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert_path(self) -> Path:
        return self.directory / "controller-client.crt"

    @property
    def client_key_path(self) -> Path:
        return self.directory / "controller-client.key"

    @property
    def newest_upload_version(self) -> int:
        return max(self.upload_keys)


def ensure_controller_pki(data_dir: Path, hostnames: list[str], *, now: datetime) -> ControllerPki:
    """Load the controller's keys, creating whatever is missing (first start, or a new hostname)."""
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        ca_key, ca_cert = create_ca("muster controller CA", now=now)
        write_private_key(pki / "ca.key", ca_key)
        write_public_file(pki / "ca.crt", certificate_pem(ca_cert))
    ca_key = load_device_key(pki / "ca.key")
    ca_cert = load_certificate((pki / "ca.crt").read_bytes())
    hosts_file = pki / "server.hosts"
    wanted = ",".join(sorted(set(hostnames)))
    if (
        not (pki / "server.crt").exists()
        or not hosts_file.exists()
        or hosts_file.read_text() != wanted
    ):
        key, cert = issue_server_certificate(ca_key, ca_cert, sorted(set(hostnames)), now=now)
        write_private_key(pki / "server.key", key)
        write_public_file(pki / "server.crt", certificate_pem(cert))
        write_public_file(hosts_file, wanted.encode())
    if not (pki / "controller-client.crt").exists():
        key, cert = issue_server_certificate(
            ca_key, ca_cert, [CONTROLLER_MQTT_IDENTITY], now=now, client_auth=True
        )
        write_private_key(pki / "controller-client.key", key)
        write_public_file(pki / "controller-client.crt", certificate_pem(cert))
    if not (pki / "licence-authority.key").exists():
        write_private_key(pki / "licence-authority.key", generate_licence_authority_key())
    upload_dir = pki / "upload"
    if not any(upload_dir.glob("v*.key")):
        write_private_key(upload_dir / "v1.key", generate_upload_key())
    upload_keys = {
        int(path.stem[1:]): load_upload_private_key(path) for path in upload_dir.glob("v*.key")
    }
    return ControllerPki(
        directory=pki,
        ca_key=ca_key,
        ca_cert=ca_cert,
        licence_key=load_licence_authority_key(pki / "licence-authority.key"),
        upload_keys=upload_keys,
    )


def rotate_upload_key(pki: ControllerPki) -> int:
    """Add a new upload key version; older versions stay so records sealed to them still open."""
    version = pki.newest_upload_version + 1
    write_private_key(pki.directory / "upload" / f"v{version}.key", generate_upload_key())
    return version
