"""Which address a per-address limit counts, behind our own reverse proxies: one rule for the
admin's logins and the public self-service page, so neither can be reset by a forged
``X-Forwarded-For`` nor lumps every citizen behind the proxy into one address."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from muster.errors import ConfigError

__all__ = ["Network", "client_address", "parse_trusted_proxies"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(entries: Sequence[str]) -> tuple[Network, ...]:
    """The ``admin_trusted_proxies`` setting as networks; a bad entry is a ConfigError naming
    it, so a typo cannot silently trust nobody (or everybody)."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ConfigError(
                f"admin_trusted_proxies 中的 {entry[:60]!r} 不是 IP 地址或网段 "
                "(write addresses or networks such as 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return tuple(networks)


def client_address(peer: str, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str:
    """The address the per-address limits count: the socket's peer, unless the peer is one of
    our ``proxies``; then the rightmost ``X-Forwarded-For`` hop that is not one of them (the
    hops left of it were written by whoever connected, so they prove nothing)."""

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in proxies)

    if not trusted(peer):
        return peer
    current = peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return current  # garbage from beyond our proxies: count the last hop we know
        current = hop
        if not trusted(hop):
            return hop
    return current
