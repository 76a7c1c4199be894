"""Enrolment on the device: generate the key here (it never leaves), gather the fingerprint,
send the CSR with the enrolment code, store what comes back."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import grpc

from edge.fingerprint import hashed_fingerprint, raw_fingerprint
from edge.identity import Enrolment, IdentityStore
from muster import __version__
from muster.crypto import generate_device_key, private_key_pem
from muster.crypto.pki import build_csr, certificate_pem, load_certificate
from muster.errors import BrokenError, EnrollmentError
from muster.v1 import enrollment_pb2, enrollment_pb2_grpc


@dataclass(frozen=True)
class EnrolResult:
    device_id: str
    township_code: str
    profile: str


def enroll(
    *,
    controller: str,
    code: str,
    ca_cert: Path,
    state_dir: Path,
    simulated_seed: str | None = None,
    timeout_s: float = 30.0,
    expected_township: str = "",
) -> EnrolResult:
    """Enrol this device. A refusal raises ``EnrollmentError`` and leaves the state dir untouched."""
    store = IdentityStore(state_dir)
    key = generate_device_key()
    salt = os.urandom(16)
    hashed = hashed_fingerprint(raw_fingerprint(simulated_seed), salt)
    request = enrollment_pb2.EnrollRequest(
        enrollment_code=code,
        csr_der=build_csr(key),
        fingerprint=enrollment_pb2.HardwareFingerprint(salt=salt, **hashed),
        software_version=__version__,
        device_model=platform.machine(),
        expected_township=expected_township,
    )
    try:
        ca_pem = ca_cert.read_bytes()
    except FileNotFoundError:
        raise EnrollmentError(
            f"找不到中心 CA 证书 {ca_cert} (controller CA certificate missing)"
        ) from None
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    with grpc.secure_channel(controller, credentials) as channel:
        stub = enrollment_pb2_grpc.EnrollmentStub(channel)
        try:
            response: enrollment_pb2.EnrollResponse = stub.Enroll(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            code_ = exc.code()
            details = exc.details()
            if code_ == grpc.StatusCode.PERMISSION_DENIED:
                raise EnrollmentError(details) from None
            raise BrokenError(
                f"无法连接中心 {controller}：{details} (controller unreachable)"
            ) from exc
    store.save(
        key_pem=private_key_pem(key),
        cert_pem=certificate_pem(load_certificate(response.certificate_der)),
        ca_pem=certificate_pem(load_certificate(response.ca_certificate_der)),
        licence=response.licence,
        enrolment=Enrolment(
            device_id=response.device_id,
            township_code=response.township_code,
            profile=response.profile,
            mqtt_url=response.mqtt_url,
            data_endpoint=response.data_endpoint,
            licence_authority_key=response.licence_authority_key.hex(),
            fingerprint_salt=salt.hex(),
            upload_keys={str(k.version): k.x25519_public_key.hex() for k in response.upload_keys},
        ),
    )
    return EnrolResult(response.device_id, response.township_code, response.profile)
