"""Firmware profiles: one YAML file per device model under ``firmware_profiles/``.

A profile says what hardware a device has and how hard it may be pushed (quotas, intervals).
The controller grants a profile at enrolment; the daemon loads it by path or by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from muster.errors import ConfigError

__all__ = [
    "PROFILE_DIR",
    "CameraProfile",
    "ConsoleProfile",
    "FirmwareProfile",
    "OutboxProfile",
    "PcscProfile",
    "ReaderProfile",
    "SimulationProfile",
    "UplinkProfile",
    "load_profile",
]

PROFILE_DIR = Path(__file__).resolve().parent.parent / "firmware_profiles"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReaderProfile(_Strict):
    """The serial SAM ID-card reader."""

    kind: Literal["sam", "none"] = "sam"
    # Anything pyserial opens: /dev/ttyUSB0, socket://127.0.0.1:7000, a pty path.
    port: str = "/dev/ttyUSB0"
    baud: int = Field(default=115200, gt=0)
    poll_interval_s: float = Field(default=0.3, ge=0.3)  # vendors: find no more often than 300 ms
    timeout_s: float = Field(default=2.0, gt=0)


class PcscProfile(_Strict):
    enabled: bool = False
    reader_filter: str = ""  # substring of the PC/SC reader name; empty takes every reader


class CameraProfile(_Strict):
    kind: Literal["opencv", "none"] = "opencv"
    # A device index ("0"), a device path, a video file or a stream URL.
    source: str = "0"
    width: int = Field(default=640, gt=0)
    height: int = Field(default=480, gt=0)
    fourcc: str = "MJPG"
    jpeg_max_bytes: int = Field(default=60_000, gt=1000)


class UplinkProfile(_Strict):
    heartbeat_interval_s: float = Field(default=60.0, gt=0)
    upload_batch: int = Field(default=64, gt=0)
    # Records sent and not yet acknowledged. Enough that the controller has the next batch in
    # hand while it stores one (a device catching up on a backlog is otherwise bound by the ack
    # round trip); a reconnect sends at most this many again. Never below ``upload_batch``.
    upload_window: int = Field(default=1024, gt=0)
    offline_alert_after_s: float = Field(default=900.0, gt=0)


class OutboxProfile(_Strict):
    max_records: int = Field(default=200_000, gt=0)  # quota: sealing refuses beyond it
    min_disk_free_bytes: int = Field(default=200 * 1024 * 1024, ge=0)


class SimulationProfile(_Strict):
    """Only for the simulator profile: how the simulated collection loop behaves."""

    records_per_minute: float = Field(default=30.0, ge=0)


class ConsoleProfile(_Strict):
    """The clerks' local console (FastAPI on 127.0.0.1)."""

    # Default: on for real devices, off for the simulator (many share one host in the demo).
    enabled: bool | None = None
    port: int = Field(default=8700, ge=1, le=65535)
    # Home-visit mode (S-05): said on every page; default on for portable devices.
    home_visit: bool | None = None
    session_idle_minutes: float = Field(default=30.0, gt=0)


class FirmwareProfile(_Strict):
    name: str
    model: str
    kind: Literal["fixed", "portable", "generic", "simulator"]
    reader: ReaderProfile = ReaderProfile()
    pcsc: PcscProfile = PcscProfile()
    camera: CameraProfile = CameraProfile()
    uplink: UplinkProfile = UplinkProfile()
    outbox: OutboxProfile = OutboxProfile()
    simulation: SimulationProfile | None = None
    console: ConsoleProfile = ConsoleProfile()

    @property
    def console_enabled(self) -> bool:
        if self.console.enabled is not None:
            return self.console.enabled
        return self.kind != "simulator"

    @property
    def home_visit(self) -> bool:
        if self.console.home_visit is not None:
            return self.console.home_visit
        return self.kind == "portable"


def load_profile(path_or_name: str | Path) -> FirmwareProfile:
    """Load a profile from a YAML path, or by name from the shipped ``firmware_profiles/``."""
    path = Path(path_or_name)
    if not path.exists() and not path.suffix:
        path = PROFILE_DIR / f"{path_or_name}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")))
        raise ConfigError(
            f"profile {path_or_name!r} not found; shipped profiles: {known}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"profile {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {path} must be a mapping of settings")
    try:
        return FirmwareProfile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"profile {path} is invalid:\n{exc}") from exc
