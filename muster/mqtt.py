"""MQTT connection settings shared by the device and the controller (URL parsing, TLS)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from muster.errors import ConfigError

__all__ = ["BrokerAddress", "client_tls_context", "parse_broker_url"]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://host:1883`` or ``mqtts://host:8883``."""
    parts = urlsplit(url)
    if parts.scheme not in {"mqtt", "mqtts"} or not parts.hostname:
        raise ConfigError(
            f"broker URL {url!r} must look like mqtt://HOST:PORT or mqtts://HOST:PORT"
        )
    try:
        port = parts.port
    except ValueError as exc:  # urllib: not a number from 0 to 65535
        raise ConfigError(f"broker URL {url!r} 端口不对 ({exc})：请给出 1 到 65535 的端口") from exc
    tls = parts.scheme == "mqtts"
    return BrokerAddress(parts.hostname, port or (8883 if tls else 1883), tls)


def client_tls_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_cert))
    context.load_cert_chain(str(cert), str(key))
    return context
