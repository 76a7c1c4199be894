"""The hardware fingerprint a licence is bound to: whatever this machine has of machine-id,
DMI product UUID, primary MAC, root disk serial and CPU model. Each component is kept only as
HMAC-SHA256(salt, value), so the controller never holds the raw serial numbers."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path

from muster.licence import FINGERPRINT_COMPONENTS

__all__ = ["RAW_SOURCES", "hashed_fingerprint", "raw_fingerprint"]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _primary_mac() -> str:
    # The first physical interface by name: stable across reboots, unlike "the one with the
    # default route", which changes when the device moves between Wi-Fi and 4G.
    net = Path("/sys/class/net")
    if not net.exists():
        return ""
    for iface in sorted(net.iterdir()):
        if iface.name == "lo" or not (iface / "device").exists():
            continue
        mac = _read(str(iface / "address"))
        if mac and mac != "00:00:00:00:00:00":
            return mac
    return ""


def _root_disk_serial() -> str:
    block = Path("/sys/block")
    if not block.exists():
        return ""
    for disk in sorted(block.iterdir()):
        if disk.name.startswith(("loop", "ram", "zram", "dm-", "sr")):
            continue
        for candidate in ("device/serial", "serial", "device/wwid"):
            value = _read(str(disk / candidate))
            if value:
                return value
    return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return ""


RAW_SOURCES: dict[str, Callable[[], str]] = {
    "machine_id": lambda: _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id"),
    "product_uuid": lambda: _read("/sys/class/dmi/id/product_uuid"),
    "primary_mac": _primary_mac,
    "root_disk_serial": _root_disk_serial,
    "cpu_model": _cpu_model,
}


def raw_fingerprint(simulated_seed: str | None = None) -> dict[str, str]:
    """The raw components. A simulated device derives its own from a seed, so many simulated
    devices on one host still have distinct fingerprints."""
    if simulated_seed is not None:
        return {c: f"sim:{simulated_seed}:{c}" for c in FINGERPRINT_COMPONENTS}
    return {name: RAW_SOURCES[name]() for name in FINGERPRINT_COMPONENTS}


def hashed_fingerprint(raw: dict[str, str], salt: bytes) -> dict[str, str]:
    return {
        name: hmac.new(salt, raw[name].encode(), hashlib.sha256).hexdigest()
        if raw.get(name)
        else ""
        for name in FINGERPRINT_COMPONENTS
    }
