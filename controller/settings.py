"""Controller settings: command-line flags over ``MUSTER_CONTROLLER_*`` environment variables over
these defaults (a county on one machine, SQLite, everything on loopback)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from muster.errors import ConfigError
from muster.mqtt import parse_broker_list, split_broker_urls


class ControllerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSTER_CONTROLLER_", extra="forbid")

    data_dir: Path = Path("var/controller")
    # Default: SQLite in the data directory. PostgreSQL: postgresql+psycopg://user@host/db
    database_url: str = ""
    # A read-only copy of that database (a PostgreSQL streaming replica): the read-only admin
    # pages, the fleet API and the XLSX exports read there; ingest and every write stay on
    # database_url. Empty: everything reads the primary.
    replica_database_url: str = ""
    bind_host: str = "127.0.0.1"
    # Names and addresses devices use to reach us; they go into the server certificate.
    public_hostnames: list[str] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    enrol_port: int = 7443  # server TLS only: devices have no certificate yet
    data_port: int = 7444  # mutual TLS
    admin_port: int = 8080
    # S-30 applicants' pages and departments' callbacks, apart from the admin UI (they face the
    # internet, behind the TLS proxy); 0 serves none (deliveries are still sent).
    applications_port: int = 0
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    # The URL devices are told to use (may differ from ours behind NAT or a load balancer).
    device_mqtt_url: str = ""
    # A broker cluster: every node devices are told, in the order they try them (they fail over
    # along it, edge/uplink/brokers.py); over device_mqtt_url. Env: MUSTER_CONTROLLER_DEVICE_BROKERS,
    # the URLs separated by commas (or a JSON list); flag: --device-broker, once per node.
    device_brokers: Annotated[list[str], NoDecode] = []
    # MQTT shared-subscription group, so several controller processes split the telemetry.
    mqtt_shared_group: str = ""
    # Where telemetry comes from: "mqtt" (the broker connection above, replicas split by
    # mqtt_shared_group) or "nats" (a NATS cluster, which has no $share: heartbeats and statuses
    # through a queue group, events and acks through a JetStream consumer the replicas share;
    # controller/fleet/telemetry_nats.py). Commands still go out over mqtt_url either way.
    telemetry_transport: Literal["mqtt", "nats"] = "mqtt"
    # The cluster's client URLs (tls://host:4222, ...); the client fails over between them.
    nats_urls: list[str] = Field(default_factory=list)
    nats_queue_group: str = "muster-controllers"
    nats_stream: str = "MUSTER_TELEMETRY"
    # Copies of the events/acks stream: 3 on a 3-node cluster, so a node's death loses none.
    nats_stream_replicas: int = Field(default=1, ge=1, le=5)
    # An event or ack a replica took but did not confirm (it died) goes to another replica after
    # this long; well under the heartbeat interval.
    nats_ack_wait_s: float = Field(default=10.0, gt=0)
    licence_days: int = 365
    # A local Mosquitto's pid file: the controller sends it SIGHUP to re-read pki/crl.pem
    # whenever the set of revoked devices changes.
    broker_pid_file: Path | None = None
    # The broker runs Mosquitto's dynamic-security plugin with our identity as its admin
    # (README, "Against Mosquitto"): revoked devices are banned there, which closes their live
    # session; the CRL alone refuses only new connections.
    broker_dynamic_security: bool = False
    broker_ban_timeout_s: float = Field(default=10.0, gt=0)
    telemetry_flush_s: float = 0.2
    # Telemetry messages held while the database catches up (a batch being applied counts).
    # Sized for 100,000 devices' status and heartbeat between two flushes, with room for their
    # events; when full, older heartbeats and statuses of a device are superseded by its newer
    # ones, and only then are messages dropped (counted; see controller/fleet/telemetry_consumer.py).
    telemetry_buffer_max: int = Field(default=250_000, ge=1)
    # How often the fleet monitor looks for silent devices and raises or resolves alerts.
    fleet_sweep_s: float = 10.0
    upload_batch: int = 256
    # Processes that check signatures, decrypt and check uploaded records (one per core when
    # unset; 0 does it in the controller's own process). See controller/records/opening.py.
    ingest_workers: int | None = Field(default=None, ge=0, le=64)
    # Attachment chunks whose record has not come yet: what one device may keep at the centre,
    # and how long before they are swept away (the device sends them again with the record).
    unclaimed_chunks_max: int = Field(default=200, ge=1)
    unclaimed_chunk_bytes_max: int = Field(default=50 * 1024 * 1024, ge=1)
    unclaimed_chunk_days: float = Field(default=7.0, gt=0)
    unclaimed_sweep_s: float = Field(default=3600.0, gt=0)
    # Admin logins: scrypt runs on this many threads, never on the event loop, and at most
    # this many more logins wait for one (128 MiB each); past that a login is told to retry.
    admin_password_workers: int = Field(default=2, ge=1)
    admin_password_waiting: int = Field(default=2, ge=0)
    # A name or address locked after too many wrong passwords: the first lockout's length
    # (each that follows doubles, up to a day); kept in the database.
    admin_lockout_s: float = Field(default=900.0, gt=0)
    # Reverse proxies in front of the admin port (addresses or networks): only from these is
    # X-Forwarded-For believed, for the per-address login limits; otherwise the socket's peer.
    admin_trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("device_brokers", mode="before")
    @classmethod
    def _split_device_brokers(cls, value: object) -> object:
        return split_broker_urls(value)

    @field_validator("device_brokers")
    @classmethod
    def _check_device_brokers(cls, value: list[str]) -> list[str]:
        # A bad address here would reach every device enrolled from now on: refuse it at start.
        if value:
            try:
                parse_broker_list(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return value

    def device_broker_urls(self) -> list[str]:
        """What enrolment tells devices: the cluster's nodes, else the one broker address."""
        return list(self.device_brokers) or [self.device_mqtt_url or self.mqtt_url]

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'controller.db').resolve()}"

    def data_endpoint(self) -> str:
        return f"{self.public_hostnames[0]}:{self.data_port}"
