"""Enrolment on the device: generate the key here (it never leaves), gather the fingerprint,
send the CSR with the enrolment code, store what comes back: identity, licence, and the release
keys the device is to trust for software updates (``identity/release-keys.json``)."""

from __future__ import annotations

import json
import os
import platform
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from edge.fingerprint import hashed_fingerprint, raw_fingerprint
from edge.identity import Enrolment, IdentityStore
from edge.updates.slots import RELEASE_KEYS_FILE
from muster import __version__
from muster.crypto import generate_device_key, private_key_pem, write_public_file
from muster.crypto.pki import build_csr, certificate_pem, load_certificate, load_certificates
from muster.enrolment_codes import DEFAULT_ENROL_PORT, certificate_matching, parse_code
from muster.errors import BrokenError, ConfigError, CryptoError, EnrollmentError
from muster.mqtt import parse_broker_list
from muster.releases import key_id
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
    expected_profile_kind: str = "",
    ca_sha256: str | None = None,
) -> EnrolResult:
    """Enrol this device. A refusal raises ``EnrollmentError``, a wrong code, CA certificate or
    port ``ConfigError`` (each saying what to do), an unreachable controller ``BrokenError``;
    all of them leave the state dir untouched. ``ca_sha256`` (from the enrolment QR code) is
    the fingerprint the CA certificate must have."""
    code = parse_code(code)
    ca_pem = _read_ca(ca_cert, ca_sha256)
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
        expected_profile_kind=expected_profile_kind,
    )
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
            if code_ == grpc.StatusCode.UNAVAILABLE:
                _diagnose(controller, ca_cert, min(timeout_s, 5.0))
            raise BrokenError(
                f"无法连接中心 {controller}：{details} (controller unreachable)；"
                "检查网络/VPN、地址和端口，以及中心服务是否在运行"
            ) from exc
    brokers = broker_urls(response)
    # Before the enrolment record, whose presence means the rest is complete.
    write_public_file(store.directory / RELEASE_KEYS_FILE, release_keys_json(response))
    store.save(
        key_pem=private_key_pem(key),
        cert_pem=certificate_pem(load_certificate(response.certificate_der)),
        ca_pem=certificate_pem(load_certificate(response.ca_certificate_der)),
        licence=response.licence,
        enrolment=Enrolment(
            device_id=response.device_id,
            township_code=response.township_code,
            profile=response.profile,
            mqtt_url=brokers[0],
            mqtt_urls=brokers if len(response.mqtt_urls) else [],
            data_endpoint=response.data_endpoint,
            licence_authority_key=response.licence_authority_key.hex(),
            fingerprint_salt=salt.hex(),
            upload_keys={str(k.version): k.x25519_public_key.hex() for k in response.upload_keys},
        ),
    )
    return EnrolResult(response.device_id, response.township_code, response.profile)


def broker_urls(response: enrollment_pb2.EnrollResponse) -> list[str]:
    """The broker addresses the enrolment answer names (the cluster's nodes, or one broker),
    checked before anything is saved: a device holding an address it cannot use would enrol and
    then never report."""
    urls = list(response.mqtt_urls) or [response.mqtt_url]
    try:
        parse_broker_list(urls)
    except ConfigError as exc:
        raise EnrollmentError(
            f"中心给出的消息服务地址不可用：{exc}；本机未保存任何注册信息。"
            "请联系中心检查其消息服务设置 (device_brokers / device_mqtt_url) 后重新注册"
        ) from None
    if response.mqtt_urls and response.mqtt_url and response.mqtt_url != urls[0]:
        raise EnrollmentError(
            f"中心给出的消息服务地址前后不一致 (mqtt_url {response.mqtt_url!r} 不是 mqtt_urls 的"
            "第一项)；本机未保存任何注册信息。请联系中心检查其设置后重新注册"
        )
    return urls


def release_keys_json(response: enrollment_pb2.EnrollResponse) -> bytes:
    """The release keys the enrolment answer names, checked (each 32 raw bytes whose id is the
    one given) and encoded as the updater reads them (key id → hex public key)."""
    keys: dict[str, str] = {}
    for entry in response.release_keys:
        if len(entry.public_key) != 32 or key_id(entry.public_key) != entry.key_id:
            raise EnrollmentError(
                f"中心给出的发布公钥 {entry.key_id[:16]!r} 无效，注册未完成 (the enrolment answer "
                "holds a malformed release key; ask the centre to check its release keys)"
            )
        keys[entry.key_id] = entry.public_key.hex()
    return json.dumps(keys, sort_keys=True).encode()


def _read_ca(ca_cert: Path, ca_sha256: str | None) -> bytes:
    try:
        ca_pem = ca_cert.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"找不到中心 CA 证书 {ca_cert} (controller CA certificate missing)"
        ) from None
    try:
        load_certificates(ca_pem)
    except CryptoError:
        raise ConfigError(
            f"{ca_cert} 不是 PEM 格式的证书：请使用中心数据目录中的 pki/ca.crt"
        ) from None
    if ca_sha256 is not None and not certificate_matching(ca_pem, ca_sha256):
        raise ConfigError(
            f"CA 证书 {ca_cert} 与注册二维码中的指纹不符 (CA certificate does not match the QR "
            "code)：这不是发出二维码的中心的证书。请向中心索取正确的 pki/ca.crt；不要继续注册"
        )
    return ca_pem


def _diagnose(controller: str, ca_cert: Path, timeout_s: float) -> None:
    """Why the enrolment port cannot be used, told in the technician's terms: raise
    ``ConfigError`` for a CA certificate that does not match, an address the certificate does
    not name, or the data port given for the enrolment port; return when the line itself is
    the trouble (the caller then reports it unreachable)."""
    host, _, port_text = controller.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit():
        raise ConfigError(
            f"中心地址 {controller!r} 应写成 HOST:PORT，例如 10.0.0.5:{DEFAULT_ENROL_PORT}"
        )
    try:
        raw = socket.create_connection((host, int(port_text)), timeout=timeout_s)
    except OSError:
        return
    context = ssl.create_default_context(cafile=str(ca_cert))
    try:
        with raw, context.wrap_socket(raw, server_hostname=host) as tls:
            tls.settimeout(timeout_s / 2)
            try:
                answer = tls.recv(1)
            except TimeoutError:
                return  # it waits for us, as the enrolment port does: a passing fault
            if answer == b"":
                raise _data_port(controller)
    except ssl.SSLCertVerificationError as exc:
        if (
            "hostname" in str(exc.verify_message).lower()
            or "ip address" in str(exc.verify_message).lower()
        ):
            raise ConfigError(
                f"中心的证书不含地址 {host}：请使用中心的正式地址（注册二维码或注册码单上的地址）"
            ) from None
        raise ConfigError(
            f"中心 {controller} 的证书不是由 {ca_cert} 签发的：CA 证书与中心不符 (the CA "
            "certificate does not match this controller)。请使用该中心的 CA 证书（中心数据目录"
            "中的 pki/ca.crt），或扫描中心打印的注册二维码；并确认地址没有写错"
        ) from None
    except ssl.SSLError as exc:
        if "CERTIFICATE_REQUIRED" in str(exc) or "HANDSHAKE_FAILURE" in str(exc):
            raise _data_port(controller) from None
        return
    except OSError:
        return


def _data_port(controller: str) -> ConfigError:
    return ConfigError(
        f"{controller} 看起来是中心的数据端口（只接受已注册设备的证书）(this looks like the data "
        f"port)：注册使用注册端口，默认是 {DEFAULT_ENROL_PORT}（以注册二维码或中心管理员给出的"
        "端口为准）"
    )
