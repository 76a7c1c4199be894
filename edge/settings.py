"""Edge daemon settings: flags over ``MUSTER_EDGE_*`` environment variables over defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from muster.mqtt import split_broker_urls


class EdgeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSTER_EDGE_", extra="forbid")

    profile: str = "simulator"
    state_dir: Path = Path("var/edge")
    # Used only until the device is enrolled; afterwards the state dir has everything.
    controller: str = "127.0.0.1:7443"
    ca_cert: Path | None = None
    # The broker cluster's nodes, tried in order with failover (edge/uplink/brokers.py); empty:
    # the one address the controller gave at enrolment. Env: MUSTER_EDGE_BROKERS, the URLs
    # separated by commas (or a JSON list); flag: --broker, once per node.
    brokers: Annotated[list[str], NoDecode] = []
    enrollment_code: str = ""
    log_level: str = "INFO"
    health_every_s: float = 600.0
    # Deltas are pulled when Health says the township's slice moved; this is the fallback.
    slice_every_s: float = 300.0

    @field_validator("brokers", mode="before")
    @classmethod
    def _split_brokers(cls, value: object) -> object:
        # The URLs themselves are checked when the daemon starts (a ConfigError naming the bad one).
        return split_broker_urls(value)
