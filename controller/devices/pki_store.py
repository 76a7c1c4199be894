"""The controller's key material on disk, created once and reused.

Layout under ``DATA_DIR/pki``: ``ca.key``/``ca.crt`` (signs device and server certificates),
``server.key``/``server.crt`` (gRPC and broker endpoints), ``controller-client.key/.crt`` (the
controller's own MQTT identity), ``licence-authority.key`` (Ed25519, signs licences) and
``upload/v{N}.key`` (X25519 upload keys; the newest is what devices seal to).
Private keys are created 0600 and never leave this directory.

Rotation of the CA happens in two steps, because a device that does not yet trust the new CA
could not even reach the controller to learn of it:

1. ``begin_ca_rotation``: a new CA is made as ``ca-next.*``. Nothing is issued from it yet, but
   it joins ``ca-bundle.crt``, the trust bundle the data port and the broker accept client
   certificates from and that devices receive with every Health call.
2. ``activate_next_ca``: once the fleet has picked up the bundle, the new CA becomes ``ca.*``,
   the old one moves to ``retired/`` (its key kept only to sign CRLs for the certificates it
   issued), and the server certificates are issued again from the new CA.

The licence-authority key rotates in one step (``rotate_licence_key``): devices take the new
public key with their next renewed licence, and licences signed by the old key stay valid on
the devices that hold them. ``crl.pem`` holds one CRL per CA in the bundle
(``controller/devices/revocation.py`` writes it).
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
from muster.errors import ConfigError

__all__ = [
    "CONTROLLER_MQTT_IDENTITY",
    "ControllerPki",
    "activate_next_ca",
    "begin_ca_rotation",
    "ensure_controller_pki",
    "load_upload_keys",
    "rotate_licence_key",
    "rotate_upload_key",
]

CONTROLLER_MQTT_IDENTITY = "muster-controller"


@dataclass(frozen=True)
class ControllerPki:
    directory: Path
    ca_key: DeviceKey
    ca_cert: Certificate
    licence_key: LicenceAuthorityKey
    upload_keys: dict[int, UploadPrivateKey]
    # Every CA whose certificates are still honoured, with its key (to sign its CRL).
    authorities: tuple[tuple[DeviceKey, Certificate], ...] = ()

    @property
    def trust_bundle_path(self) -> Path:
        return self.directory / "ca-bundle.crt"

    @property
    def trust_bundle_pem(self) -> bytes:
        return b"".join(certificate_pem(cert) for _, cert in self.authorities)

    @property
    def crl_path(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def rotation_pending(self) -> bool:
        return (self.directory / "ca-next.crt").exists()

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
    if not (pki / "ca.crt").exists() and (pki / "ca-next.crt").exists():
        _finish_activation(pki)  # an activation was interrupted by a crash
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
    upload_keys = load_upload_keys(pki)
    authorities = [(ca_key, ca_cert)]
    if (pki / "ca-next.crt").exists():
        authorities.append(_load_ca(pki / "ca-next.key", pki / "ca-next.crt"))
    for cert_path in sorted((pki / "retired").glob("ca-*.crt")):
        authorities.append(_load_ca(cert_path.with_suffix(".key"), cert_path))
    bundle = b"".join(certificate_pem(cert) for _, cert in authorities)
    bundle_path = pki / "ca-bundle.crt"
    if not bundle_path.exists() or bundle_path.read_bytes() != bundle:
        write_public_file(bundle_path, bundle)
    return ControllerPki(
        directory=pki,
        ca_key=ca_key,
        ca_cert=ca_cert,
        licence_key=load_licence_authority_key(pki / "licence-authority.key"),
        upload_keys=upload_keys,
        authorities=tuple(authorities),
    )


def _load_ca(key_path: Path, cert_path: Path) -> tuple[DeviceKey, Certificate]:
    return load_device_key(key_path), load_certificate(cert_path.read_bytes())


def begin_ca_rotation(pki: ControllerPki, *, now: datetime) -> Certificate:
    """Step 1: create the next CA and add it to the trust bundle; nothing is issued from it yet."""
    if pki.rotation_pending:
        raise ConfigError(
            "已有一次 CA 轮换在进行中 (a CA rotation is already under way): "
            "run `muster provision rotate ca --activate` to finish it first"
        )
    key, cert = create_ca(f"muster controller CA {now:%Y%m%d%H%M%S}", now=now)
    write_private_key(pki.directory / "ca-next.key", key)
    write_public_file(pki.directory / "ca-next.crt", certificate_pem(cert))
    return cert


def activate_next_ca(pki: ControllerPki) -> Certificate:
    """Step 2: issue from the next CA; the old one is retired but still trusted."""
    directory = pki.directory
    if not pki.rotation_pending:
        raise ConfigError(
            "没有待启用的新 CA (no CA rotation is under way): "
            "start one with `muster provision rotate ca`"
        )
    # ca.crt first: from then on a start sees "ca-next.crt but no ca.crt" and finishes the job.
    retired = directory / "retired"
    retired.mkdir(exist_ok=True)
    (directory / "ca.crt").replace(retired / f"ca-{pki.ca_cert.serial_number:x}.crt")
    _finish_activation(directory)
    return load_certificate((directory / "ca.crt").read_bytes())


def _finish_activation(directory: Path) -> None:
    """Every step is one rename, so whichever step a crash interrupted, this completes it."""
    retired = directory / "retired"
    if (directory / "ca-next.key").exists() and (directory / "ca.key").exists():
        old_key = load_device_key(directory / "ca.key")
        old_public = old_key.public_key().public_numbers()
        for cert_path in retired.glob("ca-*.crt"):
            cert = load_certificate(cert_path.read_bytes())
            if cert.public_key().public_numbers() == old_public:  # type: ignore[union-attr]
                (directory / "ca.key").replace(cert_path.with_suffix(".key"))
                break
        else:
            raise ConfigError(
                f"{directory}: ca.key belongs to no retired CA certificate; restore ca.crt "
                "from a backup before starting"
            )
    if (directory / "ca-next.key").exists():
        (directory / "ca-next.key").replace(directory / "ca.key")
    (directory / "ca-next.crt").replace(directory / "ca.crt")
    for stale in ("server.crt", "controller-client.crt"):
        (directory / stale).unlink(missing_ok=True)


def rotate_licence_key(pki: ControllerPki, *, now: datetime) -> Path:
    """A new licence-authority key; the old one is kept in ``retired/`` for the record."""
    retired = pki.directory / "retired"
    retired.mkdir(exist_ok=True)
    old = retired / f"licence-authority-{now:%Y%m%d%H%M%S}.key"
    (pki.directory / "licence-authority.key").replace(old)
    write_private_key(pki.directory / "licence-authority.key", generate_licence_authority_key())
    return old


def load_upload_keys(pki_dir: Path) -> dict[int, UploadPrivateKey]:
    """Every upload key version on disk (``upload/v{N}.key``)."""
    return {
        int(path.stem[1:]): load_upload_private_key(path)
        for path in (pki_dir / "upload").glob("v*.key")
    }


def rotate_upload_key(pki: ControllerPki) -> int:
    """Add a new upload key version; older versions stay so records sealed to them still open."""
    version = pki.newest_upload_version + 1
    write_private_key(pki.directory / "upload" / f"v{version}.key", generate_upload_key())
    return version
