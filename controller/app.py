"""The controller process: gRPC (enrolment, uploads), the telemetry consumer and the admin web
server over one database. Stateless apart from that database, so replicas can run side by side."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
import structlog
import uvicorn
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.admin.login_guard import PasswordWorkers
from controller.applications.public_app import create_public_app
from controller.applications.sender import DeliverySender
from controller.confirmation.device_records import KINDS as CONFIRMATION_KINDS
from controller.confirmation.face_check import PROCESS_SLOTS, FaceCheckJob, MusterFaceVerifier
from controller.confirmation.weekly import WeeklyReporter
from controller.db import make_engine, make_read_only_engine, migrate, session_factory
from controller.devices.broker_bans import BrokerBans
from controller.devices.enrolment import Enroller, enrolment_payload, publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki, load_upload_keys
from controller.devices.revocation import CrlPublisher
from controller.fleet.commands import CommandSender, mqtt_publisher
from controller.fleet.monitor import FleetMonitor
from controller.fleet.telemetry_consumer import DeviceStateStore, TelemetryConsumer
from controller.fleet.telemetry_nats import NatsTelemetryIntake, nats_tls_context
from controller.records.attachment_chunks import ChunkQuota, ChunkSweeper
from controller.records.ingest import Ingestor
from controller.rpc.servers import build_servers
from controller.settings import ControllerSettings
from muster.backoff import Backoff
from muster.clock import Clock
from muster.supervisor import Supervisor

__all__ = ["Controller", "run_controller"]

log = structlog.get_logger(__name__)


class _EmbeddedUvicorn(uvicorn.Server):
    """Uvicorn without its own signal handling: the process that embeds it decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


# Planned stop, in order: stop sending commands and taking telemetry, apply what was received,
# then every other job (``stop_order``). The web servers end by themselves once told to
# (``should_exit``).
_STOP_FIRST = ("commands", "telemetry", "telemetry-flush")
_SERVERS = frozenset({"admin", "applications-web"})


def stop_order(names: Iterable[str]) -> tuple[str, ...]:
    """The supervised jobs to cancel, in order: the telemetry path first, then the rest as
    added. A job added later is stopped too without being listed here: one left out kept the
    supervisor running, and the controller waited 10 s and cancelled it on every stop."""
    names = tuple(names)
    rest = tuple(n for n in names if n not in _STOP_FIRST and n not in _SERVERS)
    return tuple(n for n in _STOP_FIRST if n in names) + rest


def _jitter_seed(settings: ControllerSettings) -> str:
    """Seed of the controller's backoff jitter: stable for one replica (a fault run replays),
    different between replicas, so they do not all reconnect to a restarted broker at once."""
    return f"{socket.gethostname()}:{settings.bind_host}:{settings.admin_port}:{settings.data_port}"


@dataclass
class Controller:
    settings: ControllerSettings
    pki: ControllerPki
    engine: Engine
    sessions: sessionmaker[Session]
    consumer: TelemetryConsumer
    clock: Clock
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _servers: list[grpc.aio.Server] = field(default_factory=list)
    _supervisor: Supervisor | None = None
    _running: asyncio.Task[None] | None = None
    _admin: uvicorn.Server | None = None
    _public: uvicorn.Server | None = None
    _sender: DeliverySender | None = None
    ingestor: Ingestor | None = None
    _password_workers: PasswordWorkers | None = None
    _stopping: bool = False
    # The read-only replica's engine, when settings.replica_database_url names one.
    read_engine: Engine | None = None
    # The NATS telemetry intake, when settings.telemetry_transport is "nats".
    intake: NatsTelemetryIntake | None = None

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
        rng = random.Random(_jitter_seed(settings))
        consumer = TelemetryConsumer(
            settings,
            DeviceStateStore(sessions, clock),
            clock,
            pki,
            rng=random.Random(rng.random()),
        )
        controller = cls(settings, pki, engine, sessions, consumer, clock, rng)
        if settings.replica_database_url:
            controller.read_engine = make_read_only_engine(settings.replica_database_url)
        return controller

    async def start(self) -> None:
        settings, clock = self.settings, self.clock
        enroller = Enroller(
            self.sessions,
            self.pki,
            licence_days=settings.licence_days,
            mqtt_urls=settings.device_broker_urls(),
            data_endpoint=settings.data_endpoint(),
            clock=clock,
        )
        ingestor = Ingestor(
            self.sessions,
            dict(self.pki.upload_keys),
            clock,
            reload_keys=lambda: load_upload_keys(self.pki.directory),
            quota=ChunkQuota(
                max_chunks=settings.unclaimed_chunks_max,
                max_bytes=settings.unclaimed_chunk_bytes_max,
                expire_after=timedelta(days=settings.unclaimed_chunk_days),
            ),
            kinds=CONFIRMATION_KINDS,
            workers=settings.ingest_workers,
        )
        # Its opening workers start on the first batch large enough to share (most controllers
        # in a test suite never see one); that batch waits a second or two for them, once.
        self.ingestor = ingestor
        self._servers = list(
            build_servers(settings, self.pki, self.sessions, enroller, ingestor, clock)
        )
        for server in self._servers:
            await server.start()
        supervisor = Supervisor(clock, rng=random.Random(self.rng.random()))
        # The broker connection: reconnect quickly (0.5 s, doubling to 30 s), as devices do.
        supervisor.add(
            "telemetry",
            self.consumer.run,
            backoff=Backoff(0.5, 30.0, random.Random(self.rng.random())),
        )
        supervisor.add("telemetry-flush", self.consumer.flush_forever)
        if settings.telemetry_transport == "nats":
            intake = NatsTelemetryIntake(settings, self.consumer, nats_tls_context(self.pki))
            self.intake = intake
            supervisor.add(
                "telemetry-nats",
                intake.run,
                backoff=Backoff(0.5, 30.0, random.Random(self.rng.random())),
            )
        bans = None
        if settings.broker_dynamic_security:
            bans = BrokerBans(settings.mqtt_url, self.pki, timeout_s=settings.broker_ban_timeout_s)
        crl = CrlPublisher(
            self.sessions,
            self.pki,
            broker_pid_file=settings.broker_pid_file,
            clock=clock,
            bans=bans,
        )
        supervisor.add("crl", crl.run)
        monitor = FleetMonitor(self.sessions, interval_s=settings.fleet_sweep_s, clock=clock)
        supervisor.add("fleet-monitor", monitor.run)
        sender = CommandSender(self.sessions, clock)
        publish = mqtt_publisher(lambda: self.consumer.client)
        supervisor.add("commands", lambda: sender.run(publish))
        sweeper = ChunkSweeper(ingestor, clock, every_s=settings.unclaimed_sweep_s)
        supervisor.add("chunk-sweep", sweeper.run)
        self._sender = DeliverySender(self.sessions, clock)  # S-30 outbox, on our clock
        supervisor.add("deliveries", self._sender.run)
        if settings.applications_port:
            self._add_public_server(supervisor)
        # The annual confirmation's weekly workbook, every Friday (controller/confirmation/weekly.py).
        weekly = WeeklyReporter(self.sessions, clock, settings.data_dir / "confirmation")
        supervisor.add("confirmation-weekly", weekly.run)
        # Self-service selfies that found no free face slot (controller/confirmation/face_check.py).
        face_checks = FaceCheckJob(
            self.sessions,
            MusterFaceVerifier(),
            PROCESS_SLOTS,
            lambda: load_upload_keys(self.pki.directory),
            clock,
        )
        supervisor.add("confirmation-face-checks", face_checks.run)
        # Admin logins hash passwords here, off the loop the gRPC servers and telemetry share.
        self._password_workers = PasswordWorkers(
            settings.admin_password_workers, settings.admin_password_waiting
        )
        admin_app = create_admin_app(
            self.sessions,
            clock=clock,
            upload_keys=lambda: load_upload_keys(self.pki.directory),
            password_workers=self._password_workers,
            lockout=timedelta(seconds=settings.admin_lockout_s),
            trusted_proxies=settings.admin_trusted_proxies,
            read_sessions=session_factory(self.read_engine) if self.read_engine else None,
            enrolment_ticket=functools.partial(
                enrolment_payload,
                host=settings.public_hostnames[0],
                port=settings.enrol_port,
                ca_cert_pem=self.pki.ca_cert_path.read_bytes(),
            ),
        )
        admin_app.state.consumer = self.consumer  # live telemetry counters for /api/v1/telemetry
        admin_app.state.intake = self.intake
        config = uvicorn.Config(
            admin_app,
            host=settings.bind_host,
            port=settings.admin_port,
            log_level="warning",
            lifespan="off",
        )
        # Bound now, so the admin port is taken (or the start fails) before start() returns.
        first_socket: list[socket.socket] = [self._admin_socket()]

        async def serve_admin() -> None:
            if self._stopping:
                return  # a restart that comes due while the controller stops
            sock = first_socket.pop() if first_socket else self._admin_socket()
            self._admin = _EmbeddedUvicorn(config)
            await self._admin.serve(sockets=[sock])

        supervisor.add("admin", serve_admin)
        self._supervisor = supervisor
        self._running = asyncio.create_task(supervisor.run(), name="controller-supervisor")
        log.info(
            "controller started",
            enrol=f"{settings.bind_host}:{settings.enrol_port}",
            data=f"{settings.bind_host}:{settings.data_port}",
            admin=self.admin_url,
            database=settings.resolved_database_url().split("@")[-1],
        )

    def _add_public_server(self, supervisor: Supervisor) -> None:
        config = uvicorn.Config(
            create_public_app(self.sessions, self.clock),
            host=self.settings.bind_host,
            port=self.settings.applications_port,
            log_level="warning",
            lifespan="off",
        )

        async def serve_public() -> None:
            if self._stopping:
                return
            self._public = _EmbeddedUvicorn(config)
            await self._public.serve()

        supervisor.add("applications-web", serve_public)

    def _admin_socket(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.bind_host, self.settings.admin_port))
        return sock

    async def stop(self) -> None:
        self._stopping = True
        if self._admin is not None:
            self._admin.should_exit = True
        if self._public is not None:
            self._public.should_exit = True
        for server in self._servers:
            await server.stop(grace=2.0)
        if self._supervisor is not None:
            await self._supervisor.stop(*stop_order(self._supervisor.names))
        await self.consumer.flush()
        if self._running is not None:
            if self._admin is not None:
                self._admin.should_exit = True  # in case it was restarted meanwhile
            try:
                await asyncio.wait_for(asyncio.shield(self._running), timeout=10.0)
            except TimeoutError:
                log.warning("admin server did not stop in 10 s; cancelled")
                self._running.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._running
        if self._public is not None:
            self._public.should_exit = True
        if self._sender is not None:
            await self._sender.aclose()
        if self._password_workers is not None:
            self._password_workers.close()  # after the admin server: no login is left waiting
        if self.ingestor is not None:
            self.ingestor.close()  # after the servers: no batch is left in hand
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()
        log.info("controller stopped")


async def run_controller(settings: ControllerSettings, stop: asyncio.Event, clock: Clock) -> None:
    controller = Controller.prepare(settings, clock)
    await controller.start()
    try:
        await stop.wait()
    finally:
        await controller.stop()
