"""The controller process: gRPC (enrolment, uploads), the telemetry consumer and the admin web
server over one database. Stateless apart from that database, so replicas can run side by side."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import structlog
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.commands import CommandSender, mqtt_publisher
from controller.db import make_engine, migrate, session_factory
from controller.enrollment import Enroller, publish_upload_keys
from controller.fleet_state import FleetMonitor
from controller.grpc_services import build_servers
from controller.ingest import Ingestor
from controller.revocation import CrlPublisher
from controller.settings import ControllerSettings
from controller.telemetry import DeviceStateStore, TelemetryConsumer
from muster.clock import Clock
from provisioning.pki_store import ControllerPki, ensure_controller_pki, load_upload_keys

log = structlog.get_logger(__name__)


class _EmbeddedUvicorn(uvicorn.Server):
    """Uvicorn without its own signal handling: the process that embeds it decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Controller:
    settings: ControllerSettings
    pki: ControllerPki
    engine: Engine
    sessions: sessionmaker[Session]
    consumer: TelemetryConsumer
    clock: Clock
    _servers: list[grpc.aio.Server] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _admin: uvicorn.Server | None = None

    @property
    def admin_url(self) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.admin_port}/"

    @classmethod
    def prepare(cls, settings: ControllerSettings, clock: Clock) -> Controller:
        """Create keys and bring the schema up to date; nothing is listening yet."""
        now = clock.now()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        pki = ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now)
        url = settings.resolved_database_url()
        migrate(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            publish_upload_keys(session, pki, now)
        consumer = TelemetryConsumer(settings, DeviceStateStore(sessions), pki)
        return cls(settings, pki, engine, sessions, consumer, clock)

    async def start(self) -> None:
        settings = self.settings
        enroller = Enroller(
            self.sessions,
            self.pki,
            licence_days=settings.licence_days,
            mqtt_url=settings.device_mqtt_url or settings.mqtt_url,
            data_endpoint=settings.data_endpoint(),
        )
        ingestor = Ingestor(
            self.sessions,
            dict(self.pki.upload_keys),
            reload_keys=lambda: load_upload_keys(self.pki.directory),
        )
        self._servers = list(build_servers(settings, self.pki, self.sessions, enroller, ingestor))
        for server in self._servers:
            await server.start()
        self._tasks.append(asyncio.create_task(self.consumer.run(), name="telemetry"))
        crl = CrlPublisher(self.sessions, self.pki, broker_pid_file=settings.broker_pid_file)
        self._tasks.append(asyncio.create_task(crl.run(), name="crl"))
        monitor = FleetMonitor(self.sessions, interval_s=settings.fleet_sweep_s)
        self._tasks.append(asyncio.create_task(monitor.run(), name="fleet-monitor"))
        sender = CommandSender(self.sessions)
        publish = mqtt_publisher(lambda: self.consumer.client)
        self._tasks.append(asyncio.create_task(sender.run(publish), name="commands"))
        admin_app = create_admin_app(
            self.sessions, upload_keys=lambda: load_upload_keys(self.pki.directory)
        )
        admin_app.state.consumer = self.consumer  # live telemetry counters for /api/v1/telemetry
        config = uvicorn.Config(
            admin_app,
            host=settings.bind_host,
            port=settings.admin_port,
            log_level="warning",
            lifespan="off",
        )
        self._admin = _EmbeddedUvicorn(config)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.bind_host, settings.admin_port))
        self._tasks.append(asyncio.create_task(self._admin.serve(sockets=[sock]), name="admin"))
        log.info(
            "controller started",
            enrol=f"{settings.bind_host}:{settings.enrol_port}",
            data=f"{settings.bind_host}:{settings.data_port}",
            admin=self.admin_url,
            database=settings.resolved_database_url().split("@")[-1],
        )

    async def stop(self) -> None:
        if self._admin is not None:
            self._admin.should_exit = True
        for server in self._servers:
            await server.stop(grace=2.0)
        await self.consumer.flush()
        for task in self._tasks:
            if task.get_name() != "admin":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.engine.dispose()
        log.info("controller stopped")


async def run_controller(settings: ControllerSettings, stop: asyncio.Event, clock: Clock) -> None:
    controller = Controller.prepare(settings, clock)
    await controller.start()
    try:
        await stop.wait()
    finally:
        await controller.stop()
