"""Edge daemon settings: flags over ``MUSTER_EDGE_*`` environment variables over defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSTER_EDGE_", extra="forbid")

    profile: str = "simulator"
    state_dir: Path = Path("var/edge")
    # Used only until the device is enrolled; afterwards the state dir has everything.
    controller: str = "127.0.0.1:7443"
    ca_cert: Path | None = None
    enrollment_code: str = ""
    log_level: str = "INFO"
    health_every_s: float = 600.0
    # Deltas are pulled when Health says the township's slice moved; this is the fallback.
    slice_every_s: float = 300.0
