"""X.509 for the fleet: the controller CA, device certificates from CSRs, server certificates.

The device id is the certificate's CN; services take it from the verified peer certificate,
never from a message.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from muster.crypto.keys import DeviceKey, DevicePublicKey
from muster.errors import CertificateError

__all__ = [
    "Certificate",
    "build_crl",
    "build_csr",
    "certificate_der",
    "certificate_pem",
    "common_name",
    "create_ca",
    "crl_serials",
    "device_public_key",
    "issue_device_certificate",
    "issue_server_certificate",
    "issued_by",
    "load_certificate",
    "load_certificates",
    "verify_issued_by",
    "verify_issued_by_any",
]

Certificate = x509.Certificate


def _name(common_name: str, organisation: str = "muster") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_ca(
    common_name: str, *, now: datetime, days: int = 3650
) -> tuple[DeviceKey, Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def build_csr(key: DeviceKey, common_name: str = "pending-enrolment") -> bytes:
    """A PKCS#10 request in DER; the CA replaces the subject with the device id it assigns."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(common_name))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER)


def _leaf(
    ca_key: DeviceKey,
    ca_cert: Certificate,
    public_key: DevicePublicKey,
    common_name: str,
    usage: x509.ObjectIdentifier,
    now: datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )


def issue_device_certificate(
    ca_key: DeviceKey,
    ca_cert: Certificate,
    csr_der: bytes,
    device_id: str,
    *,
    now: datetime,
    days: int = 730,
) -> Certificate:
    try:
        csr = x509.load_der_x509_csr(csr_der)
    except ValueError as exc:
        raise CertificateError("the certificate request is not a DER PKCS#10 request") from exc
    if not csr.is_signature_valid:
        raise CertificateError("the certificate request's signature does not verify")
    public_key = csr.public_key()
    if (
        not isinstance(public_key, ec.EllipticCurvePublicKey)
        or public_key.curve.name != "secp256r1"
    ):
        raise CertificateError("device keys must be P-256 (secp256r1)")
    builder = _leaf(
        ca_key, ca_cert, public_key, device_id, ExtendedKeyUsageOID.CLIENT_AUTH, now, days
    )
    return builder.sign(ca_key, hashes.SHA256())


def issue_server_certificate(
    ca_key: DeviceKey,
    ca_cert: Certificate,
    hostnames: list[str],
    *,
    now: datetime,
    days: int = 825,
    client_auth: bool = False,
) -> tuple[DeviceKey, Certificate]:
    """A key and certificate for a controller or broker endpoint (and, with ``client_auth``,
    for the controller's own MQTT identity)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client_auth else ExtendedKeyUsageOID.SERVER_AUTH
    builder = _leaf(ca_key, ca_cert, key.public_key(), hostnames[0], usage, now, days)
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def certificate_pem(cert: Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_der(cert: Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def load_certificate(data: bytes) -> Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError("not an X.509 certificate") from exc


def common_name(cert: Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        raise CertificateError("certificate has no common name")
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def device_public_key(cert: Certificate) -> DevicePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateError("device certificate does not hold an EC key")
    return key


def verify_issued_by(cert: Certificate, ca_cert: Certificate, *, now: datetime) -> str:
    """Check that ``cert`` was issued by ``ca_cert`` and is within its validity; return its CN."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError("certificate was not issued by this controller's CA") from exc
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise CertificateError(
            f"certificate is outside its validity ({cert.not_valid_before_utc:%Y-%m-%d} – "
            f"{cert.not_valid_after_utc:%Y-%m-%d})"
        )
    return common_name(cert)


def load_certificates(data: bytes) -> list[Certificate]:
    """Every certificate in a PEM bundle (a trust bundle holds several CAs during a rotation)."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateError("not a PEM bundle of X.509 certificates") from exc


def verify_issued_by_any(
    cert: Certificate, authorities: list[Certificate], *, now: datetime
) -> str:
    """Like ``verify_issued_by`` against whichever CA of a trust bundle issued ``cert``."""
    failure: CertificateError | None = None
    for authority in authorities:
        try:
            return verify_issued_by(cert, authority, now=now)
        except CertificateError as exc:
            failure = exc
    raise failure or CertificateError("the trust bundle holds no CA certificate")


def issued_by(cert: Certificate, authority: Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def build_crl(
    ca_key: DeviceKey,
    ca_cert: Certificate,
    revoked: list[tuple[int, datetime]],
    *,
    now: datetime,
    valid_for: timedelta = timedelta(days=30),
) -> bytes:
    """A PEM CRL signed by ``ca_key`` listing ``(serial, revoked_at)`` pairs.

    Brokers with CRL checking refuse every client of a CA that has no current CRL, so an empty
    one is still issued for each CA; ``valid_for`` is long because a broker that kept a stale
    CRL would otherwise lock out the whole fleet.
    """
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - timedelta(minutes=5))
        .next_update(now + valid_for)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
    )
    for serial, at in sorted(revoked):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at).build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_serials(pem: bytes) -> set[int]:
    """Serial numbers listed in every CRL of a PEM file (for checks and tests)."""
    serials: set[int] = set()
    for block in pem.split(b"-----END X509 CRL-----"):
        if b"-----BEGIN X509 CRL-----" in block:
            crl = x509.load_pem_x509_crl(block + b"-----END X509 CRL-----\n")
            serials |= {entry.serial_number for entry in crl}
    return serials
