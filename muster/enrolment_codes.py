"""Enrolment codes and the enrolment QR payload: what a technician types or scans to enrol a
device for one township. Both sides use this module: the device to read what was typed or
scanned, the controller to hash and to print.

A code is 16 characters of Crockford base32 in four groups (``K7QF-2M9D-XH4T-8PWC``): 80 bits,
no 0/O or 1/I/L confusion, readable over the phone. Only its SHA-256 is stored. What a person
types is normalised by :func:`parse_code` (one rule): any case, with or without dashes or
spaces, O read as 0 and I/L as 1.

The QR payload (version 1) carries everything a device needs to enrol without typing::

    MUSTER1/<CODE>/<HOST>/<PORT>/<CA-SHA256>

``HOST`` is the controller's public name or address (IPv6 in brackets), ``PORT`` its enrolment
port, ``CA-SHA256`` the SHA-256 of the issuing CA certificate's DER, 64 hex digits. Every
character of a version-1 payload with a DNS name or IPv4 address is in the QR alphanumeric set
(upper case, ``/``, ``.``, ``-``, ``:``), so the symbol stays small. A later version changes the
number after ``MUSTER``; a device that does not know it says so instead of guessing. The older
``MUSTER-ENROL:<CODE>`` payload (the code only) is recognised and explained.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass

from muster.crypto.pki import certificate_der, load_certificate, load_certificates
from muster.errors import ConfigError, CryptoError

__all__ = [
    "ALPHABET",
    "DEFAULT_ENROL_PORT",
    "MAX_TICKET_BYTES",
    "TICKET_VERSION",
    "EnrolmentTicket",
    "ca_fingerprint",
    "certificate_matching",
    "controller_host",
    "hash_code",
    "new_code",
    "normalise_code",
    "parse_code",
    "parse_ticket",
]

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})
CODE_LENGTH = 16

# The controller's default ports (controller.settings): the devices' enrolment port takes
# server-only TLS; the data port beside it wants a device certificate.
DEFAULT_ENROL_PORT = 7443
DEFAULT_DATA_PORT = 7444

TICKET_VERSION = 1
# A version-1 payload is under 200 bytes; anything far longer is not ours.
MAX_TICKET_BYTES = 512
_TICKET_PREFIX = re.compile(r"^MUSTER(\d{1,3})/")
_OLD_PREFIX = "MUSTER-ENROL:"
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{64}$")


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    return _grouped(raw)


def _grouped(raw: str) -> str:
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalise_code(code: str) -> str:
    """Accept what a person types: any case, spaces or dashes, O for 0 and I/L for 1. Does not
    judge the result; :func:`parse_code` does."""
    cleaned = "".join(ch for ch in code.upper() if ch.isalnum()).translate(_CONFUSABLE)
    return _grouped(cleaned)


def parse_code(text: str) -> str:
    """The code in its one written form (``K7QF-2M9D-XH4T-8PWC``), or :class:`ConfigError`
    saying what is wrong with what was typed."""
    cleaned = "".join(ch for ch in text.upper() if ch not in " -\t").translate(_CONFUSABLE)
    wrong = sorted({ch for ch in cleaned if ch not in ALPHABET})
    if wrong:
        shown = "".join(ch if ch.isprintable() else "?" for ch in wrong[:5])
        raise ConfigError(
            f"注册码含有无效字符 {shown!r}：注册码只含数字和字母（不含 U），"
            "形如 K7QF-2M9D-XH4T-8PWC；请对照注册码单核对"
        )
    if len(cleaned) != CODE_LENGTH:
        raise ConfigError(
            f"注册码应为 {CODE_LENGTH} 位（4 组，每组 4 位），这里是 {len(cleaned)} 位；"
            "请对照注册码单核对"
        )
    return _grouped(cleaned)


def hash_code(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


# ---- the QR payload ------------------------------------------------------------------------


def ca_fingerprint(certificate_pem_or_der: bytes) -> str:
    """SHA-256 of a certificate's DER, 64 upper-case hex digits."""
    return (
        hashlib.sha256(certificate_der(load_certificate(certificate_pem_or_der)))
        .hexdigest()
        .upper()
    )


def certificate_matching(bundle: bytes, fingerprint: str) -> bool:
    """Whether any certificate in ``bundle`` (PEM, one or more) has ``fingerprint``."""
    try:
        certificates = load_certificates(bundle)
    except (CryptoError, ValueError):
        return False
    wanted = fingerprint.upper()
    return any(
        hashlib.sha256(certificate_der(cert)).hexdigest().upper() == wanted for cert in certificates
    )


@dataclass(frozen=True, slots=True)
class EnrolmentTicket:
    """What the enrolment QR code carries."""

    code: str
    host: str
    port: int
    ca_sha256: str  # 64 upper-case hex digits

    @property
    def controller(self) -> str:
        """``HOST:PORT`` as gRPC takes it."""
        return f"{self.host}:{self.port}"

    def payload(self) -> str:
        return (
            f"MUSTER{TICKET_VERSION}/{self.code}/{self.host.upper()}/{self.port}/{self.ca_sha256}"
        )

    @classmethod
    def make(cls, code: str, host: str, port: int, ca_sha256: str) -> EnrolmentTicket:
        """A ticket from the controller's own values, checked as a scanned one would be."""
        return parse_ticket(
            f"MUSTER{TICKET_VERSION}/{code}/{controller_host(host)}/{port}/{ca_sha256}"
        )


def controller_host(text: str) -> str:
    """A controller's host as a ticket carries it (a DNS name, IPv4, or IPv6 in brackets),
    or :class:`ConfigError`."""
    if ":" in text and not text.startswith("["):
        text = f"[{text}]"  # a bare IPv6 address, as a setting may hold it
    return _host(text)


def _host(text: str) -> str:
    if text.startswith("[") and text.endswith("]"):
        try:
            return f"[{ipaddress.IPv6Address(text[1:-1]).compressed}]"
        except ValueError:
            pass
    elif _HOSTNAME.match(text):
        return text.lower()
    raise ConfigError(f"二维码中的中心地址 {text[:60]!r} 不是有效的主机名或 IP 地址")


def parse_ticket(data: str | bytes) -> EnrolmentTicket:
    """Read a scanned payload; :class:`ConfigError` naming what is wrong and what to do."""
    if len(data) > MAX_TICKET_BYTES:
        raise ConfigError(f"二维码内容过长（{len(data)} 字节）：这不是 muster 的注册二维码")
    if isinstance(data, bytes):
        try:
            data = data.decode("ascii")
        except UnicodeDecodeError:
            raise ConfigError("二维码内容不是文本：这不是 muster 的注册二维码") from None
    text = data.strip()
    if not text.isascii() or not text.isprintable():
        raise ConfigError("二维码含有非 ASCII 或不可打印字符：这不是 muster 的注册二维码")
    if text.upper().startswith(_OLD_PREFIX):
        raise ConfigError(
            "这是旧格式的注册二维码，只含注册码：请另行给出中心地址和 CA 证书"
            "（--controller HOST:PORT --code CODE --ca-cert ca.crt），或向中心索取新的二维码"
        )
    match = _TICKET_PREFIX.match(text.upper())
    if match is None:
        raise ConfigError(
            "这不是 muster 的注册二维码（应以 MUSTER1/ 开头）：请扫描中心打印的注册二维码"
        )
    version = int(match.group(1))
    if version != TICKET_VERSION:
        raise ConfigError(
            f"这是第 {version} 版的注册二维码，本机软件只认识第 {TICKET_VERSION} 版："
            "请升级本机软件，或向中心索取第 1 版的注册二维码"
        )
    fields = text[match.end() :].split("/")
    if len(fields) != 4:
        raise ConfigError(
            f"注册二维码应有 4 项（注册码/地址/端口/CA 指纹），这里有 {len(fields)} 项："
            "二维码可能残缺，请重新打印"
        )
    code_text, host_text, port_text, fingerprint = fields
    code = parse_code(code_text)
    host = _host(host_text)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"二维码中的端口 {port_text[:10]!r} 无效（应为 1–65535）")
    if not _FINGERPRINT.match(fingerprint):
        raise ConfigError(
            "二维码中的 CA 证书指纹无效（应为 64 位十六进制 SHA-256）：二维码可能残缺，请重新打印"
        )
    return EnrolmentTicket(code, host, int(port_text), fingerprint.upper())
