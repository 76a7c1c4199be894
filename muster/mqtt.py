"""MQTT connection settings shared by the device and the controller (URL parsing, TLS)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from muster.errors import ConfigError

__all__ = [
    "BrokerAddress",
    "client_tls_context",
    "parse_broker_list",
    "parse_broker_url",
    "split_broker_urls",
]


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


def parse_broker_list(urls: Sequence[str]) -> tuple[BrokerAddress, ...]:
    """Every URL of the list parsed (``mqtt://`` or ``mqtts://``, see
    :func:`muster.mqtt.parse_broker_url`); a ``ConfigError`` naming the entry that is wrong for
    an empty list, a bad or repeated entry, or a list that mixes TLS and plain addresses (a
    device has one identity: every node of its cluster must take it the same way)."""
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise ConfigError("消息服务地址列表为空：至少给出一个地址，例如 mqtts://HOST:8883")
    addresses: list[BrokerAddress] = []
    for position, url in enumerate(urls, start=1):
        try:
            address = parse_broker_url(url.strip())
        except ConfigError as exc:
            raise ConfigError(f"消息服务地址列表第 {position} 项：{exc}") from exc
        if any((a.host, a.port) == (address.host, address.port) for a in addresses):
            raise ConfigError(
                f"消息服务地址列表第 {position} 项 ({url!r}) 与前面的地址重复：每个节点只列一次"
            )
        if addresses and address.tls != addresses[0].tls:
            raise ConfigError(
                f"消息服务地址列表第 {position} 项 ({url!r}) 与第一项混用 mqtt:// 和 mqtts://："
                "每个节点都用 mqtts://（测试用的明文服务则都用 mqtt://）"
            )
        addresses.append(address)
    return tuple(addresses)


def split_broker_urls(value: object) -> object:
    """A broker list as settings give it: a list, or one string of URLs separated by commas (or a
    JSON list), as an environment variable carries it. Each URL is checked by
    :func:`parse_broker_list`."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return list(value) if isinstance(value, tuple) else value


def client_tls_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_cert))
    context.load_cert_chain(str(cert), str(key))
    return context
