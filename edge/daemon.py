"""The edge daemon: one asyncio process, tasks under one supervisor (:mod:`muster.supervisor`).
A task that fails is reported and restarted with backoff; nothing but a stop request ends the
daemon. The daemon owns the process's one clock and hands it to every part it builds, and routes each
identity card read (SAM reader, PC/SC) to exactly one consumer through one handoff.

Over 400 lines because it is the one place that builds the device's parts and wires them under
the supervisor (uplink, readers, console, updates, licence guard); each part lives in its module.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from collections.abc import Awaitable, Callable
from typing import Literal

import grpc
import structlog

from edge.card_reads import CardHandoff
from edge.commands import CommandHandler, CommandHooks, erase_device_state
from edge.console.service import Console
from edge.enrolment import enroll
from edge.hardware import Hardware
from edge.identity import IdentityStore
from edge.licence_guard import LicenceGuard, required_features
from edge.log_tail import LogTail
from edge.membership import Membership
from edge.outbox import Outbox
from edge.returned_records import write_returned
from edge.sealer import Sealer
from edge.settings import EdgeSettings
from edge.simulators.collector import SimulatedCollector
from edge.slice_store import SliceStore
from edge.updates.task import busy_reason, updates_job
from edge.uplink.brokers import parse_broker_list
from edge.uplink.data import DataLink, device_channel
from edge.uplink.slices import SliceSync
from edge.uplink.telemetry import TelemetryLink
from muster import __version__
from muster.backoff import Backoff
from muster.clock import Clock
from muster.errors import BrokenError, ConfigError, EnrollmentError
from muster.mqtt import client_tls_context
from muster.profiles import FirmwareProfile, load_profile
from muster.supervisor import Supervisor, TaskFailure
from muster.v1 import data_pb2, device_pb2

log = structlog.get_logger(__name__)

LICENCE_CHECK_EVERY_S = 3600.0
DRAIN_ON_STOP_S = 10.0


def simulated_seed(settings: EdgeSettings, profile: FirmwareProfile) -> str | None:
    """Simulated devices share a host, so each derives its fingerprint from its own state dir."""
    return str(settings.state_dir.resolve()) if profile.kind == "simulator" else None


async def ensure_enrolled(
    settings: EdgeSettings, profile: FirmwareProfile, store: IdentityStore, clock: Clock
) -> None:
    if store.is_enrolled():
        return
    if not settings.enrollment_code or settings.ca_cert is None:
        raise ConfigError(
            "设备尚未注册：请提供注册码和中心 CA 证书 (--code CODE --ca-cert FILE), "
            "或先运行 muster provision enroll"
        )
    # Seeded by the state dir: replayable for one device, spread across a township's devices.
    backoff = Backoff(maximum=30.0, rng=random.Random(str(settings.state_dir.resolve())))
    while True:
        try:
            result = await asyncio.to_thread(
                enroll,
                controller=settings.controller,
                code=settings.enrollment_code,
                ca_cert=settings.ca_cert,
                state_dir=settings.state_dir,
                simulated_seed=simulated_seed(settings, profile),
            )
        except BrokenError as exc:
            delay = backoff.next_delay()
            log.warning(
                "enrolment: controller unreachable", error=str(exc), retry_in_s=round(delay, 1)
            )
            await clock.sleep(delay)
            continue
        log.info("enrolled", device_id=result.device_id, township=result.township_code)
        return


def card_consumer(
    profile: FirmwareProfile, *, reads_cards: bool
) -> Literal["console", "collector"] | None:
    """Who takes the device's identity reads: the console when it runs, the simulated collector
    only when the profile configures one and no console runs, otherwise no one."""
    if not reads_cards:
        return None
    if profile.console_enabled:
        return "console"
    if profile.simulation is not None:
        return "collector"
    return None


class Daemon:
    def __init__(self, settings: EdgeSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.profile = load_profile(settings.profile)
        self.store = IdentityStore(settings.state_dir)
        self.started = clock.monotonic()
        self.sequence = 0
        self.log_tail = LogTail()
        self.log_tail.install()
        # Filled by the other parts of the daemon that take commands (slices, licence renewal).
        self.command_hooks = CommandHooks(on_revoked=self._revoked)
        self.wipe_requested = False

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await ensure_enrolled(self.settings, self.profile, self.store, self.clock)
        enrolment = self.store.enrolment()
        structlog.contextvars.bind_contextvars(device_id=enrolment.device_id)
        self.outbox = Outbox(
            self.settings.state_dir / "outbox.sqlite3",
            clock=self.clock,
            max_records=self.profile.outbox.max_records,
            min_disk_free_bytes=self.profile.outbox.min_disk_free_bytes,
        )
        self.guard = LicenceGuard(
            self.store,
            simulated_seed=simulated_seed(self.settings, self.profile),
            required_features=required_features(self.profile),
            clock=self.clock,
        )
        verdict = self.guard.check()
        if not verdict.allowed:
            log.warning("collection refused", reason=verdict.reason, message=verdict.message)
        self.sealer = Sealer(self.store, self.outbox, self.guard, clock=self.clock)
        self.membership = Membership(self.store, self.guard, clock=self.clock)
        self.command_hooks.renew_licence = self.membership.renew_now
        self.data = DataLink(
            self.store,
            self.outbox,
            window=max(self.profile.uplink.upload_window, self.profile.uplink.upload_batch),
            batch=self.profile.uplink.upload_batch,
            health_every_s=self.settings.health_every_s,
            on_revoked=self._revoked,
            on_keys=self._keys,
            on_rejected=self._rejected,
            health_request=self._health_request,
            after_health=self._after_health,
            clock=self.clock,
        )
        self.slices = SliceStore(
            self.settings.state_dir / "slices" / "slice.sqlite3",
            self.store.directory / "slice.key",
        )
        self.slice_sync = SliceSync(
            self.store,
            self.slices,
            every_s=self.settings.slice_every_s,
            clock=self.clock,
            on_event=lambda message: self.telemetry.emit(
                device_pb2.Event.KIND_UNSPECIFIED, message
            ),
        )
        self.command_hooks.sync_slice = self._sync_slice_now
        broker_urls = enrolment.broker_urls(self.settings.brokers)
        tls = (
            client_tls_context(self.store.ca_path, self.store.cert_path, self.store.key_path)
            if parse_broker_list(broker_urls)[0].tls
            else None
        )
        self.telemetry = TelemetryLink(
            enrolment.device_id,
            broker_urls,
            self.heartbeat,
            interval_s=self.profile.uplink.heartbeat_interval_s,
            tls_context=tls,
            on_command=self._on_command,
            clock=self.clock,
        )
        self.commands = CommandHandler(
            enrolment.device_id,
            self.settings.state_dir,
            self.guard,
            self.log_tail,
            self.clock,
            self.command_hooks,
        )
        self.hardware = Hardware(
            self.profile,
            lambda kind, message, details: self.telemetry.emit(kind, message, **details),
            clock=self.clock,
        )
        jobs: dict[str, Callable[[], Awaitable[None]]] = {
            "telemetry": self.telemetry.run,
            "data": self.data.run,
            "licence": self._licence_forever,
            "reader": self.hardware.run_reader,
            "pcsc": self.hardware.run_pcsc,
            "camera": self.hardware.run_camera,
            "slices": self.slice_sync.run,
        }
        # Each identity read goes to exactly one consumer: the console when it runs, else the
        # simulated collector when the profile has one, else no one (dropped as it is read).
        self.card_reads = CardHandoff(self.clock)
        self.console: Console | None = None
        self.collector: SimulatedCollector | None = None
        reads_for = card_consumer(self.profile, reads_cards=self.hardware.reads_cards)
        self.hardware.handoff = self.card_reads if reads_for is not None else None
        if self.profile.simulation is not None:
            self.collector = SimulatedCollector(
                self.sealer,
                enrolment.township_code,
                self.profile.simulation.records_per_minute,
                on_sealed=self.data.notify_new_record,
                cards=self.card_reads if reads_for == "collector" else None,
                initial_data=self.slices.random_person,
                find_initial=self.slices.find,
                clock=self.clock,
            )
            jobs["collector"] = self.collector.run
        if self.profile.console_enabled:
            self.console = Console(
                profile=self.profile,
                state_dir=self.settings.state_dir,
                identity_dir=self.store.directory,
                township_code=enrolment.township_code,
                device_id=enrolment.device_id,
                hardware=self.hardware,
                card_reads=self.card_reads if reads_for == "console" else None,
                sealer=self.sealer,
                outbox=self.outbox,
                guard=self.guard,
                slices=self.slices,
                online=lambda: self.data.connected,
                on_sealed=self.data.notify_new_record,
                clock=self.clock,
            )
            jobs["console"] = self.console.run
            log.info("console listening", url=self.console.url)
        # Software updates: a switch or rollback stops the daemon cleanly; systemd starts it again.
        self.updater, jobs["updates"] = updates_job(
            self.settings.state_dir,
            profile=self.profile.name,
            factory_version=__version__,
            channel=lambda: device_channel(self.store),
            clock=self.clock,
            restart=self._restart_for_update,
            busy=lambda: busy_reason(
                lambda: len(self.console.drafts.all()) if self.console is not None else 0,
                lambda: self.data.connected and self.outbox.stats().pending > 0,
            ),
            healthy=lambda: self.data.connected and self.clock.monotonic() - self.started >= 60,
        )
        # The version of the slot this process runs (the launcher's choice), not the install's.
        self.software_version = self.updater.slots.running_version()
        supervisor = Supervisor(
            self.clock,
            rng=random.Random(enrolment.device_id),
            on_failure=self._task_failed,
        )
        for name, job in jobs.items():
            supervisor.add(name, job)
        running = asyncio.create_task(supervisor.run(), name="supervisor")
        self.telemetry.emit(
            device_pb2.Event.KIND_STARTED, f"采集守护进程已启动 (muster {self.software_version})"
        )
        log.info("daemon running", profile=self.profile.name, township=enrolment.township_code)
        try:
            await stop.wait()
        finally:
            # Collection ends (a seal in progress finishes) before the outbox is drained.
            await supervisor.stop("collector")
            await self._drain(DRAIN_ON_STOP_S)
            await self.telemetry.say_goodbye()
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            self.outbox.close()
            self.slices.close()
            if self.console is not None:
                self.console.close()
            if self.wipe_requested:
                log.warning("wiped on command", removed=erase_device_state(self.settings.state_dir))
            log.info("daemon stopped")

    async def _drain(self, timeout_s: float) -> None:
        """On a planned stop, give the uplink a moment to empty the outbox; whatever is left
        simply waits on disk for the next start."""
        deadline = self.clock.monotonic() + timeout_s
        while self.data.connected and self.clock.monotonic() < deadline:
            if self.outbox.stats().pending == 0:
                return
            self.data.notify_new_record()
            await self.clock.sleep(0.1)

    def _task_failed(self, failure: TaskFailure) -> None:
        self.telemetry.emit(
            device_pb2.Event.KIND_UNSPECIFIED,
            f"任务 {failure.name} 出错，{failure.restart_in_s:.0f} 秒后重启：{failure.error}",
        )

    async def _licence_forever(self) -> None:
        while True:
            await self.clock.sleep(LICENCE_CHECK_EVERY_S)
            previous = self.guard.verdict
            verdict = await asyncio.to_thread(self.guard.check)
            if not verdict.allowed and verdict.reason != previous.reason:
                self.telemetry.emit(
                    device_pb2.Event.KIND_LICENCE_REFUSED, verdict.message, reason=verdict.reason
                )

    async def _restart_for_update(self) -> None:
        self._stop.set()

    async def _on_command(self, payload: bytes) -> None:
        outcome = await self.commands.handle(payload)
        if outcome is None:
            return
        await self.telemetry.send_ack(outcome.ack)
        if outcome.then:
            # Restart is a clean exit for the service manager to start us again; a wipe erases
            # the state dir once everything that writes to it has stopped.
            self.wipe_requested = outcome.then == "wipe"
            self._stop.set()

    def _health_request(self) -> data_pb2.HealthRequest:
        request = self.membership.health_request()
        # The clerks' answers to the centre's tasks go up with every call until answered.
        return self.console.centre.add_answers(request) if self.console is not None else request

    async def _after_health(
        self, channel: grpc.aio.Channel, response: data_pb2.HealthResponse
    ) -> None:
        self.slice_sync.observe_health(response)
        await self.membership.after_health(channel, response)
        if await asyncio.to_thread(
            write_returned, self.settings.state_dir, response.returned_records
        ):
            log.info("records returned for correction", count=len(response.returned_records))
        if self.console is not None and await asyncio.to_thread(
            self.console.centre.take_health, response
        ):
            log.info("tasks from the centre updated", tasks=len(response.tasks))
        if self.console is not None and await asyncio.to_thread(
            self.console.accounts.replace, response.clerks
        ):
            log.info("clerk accounts updated", clerks=len(response.clerks))

    async def _sync_slice_now(self, arguments: dict[str, str]) -> str:
        self.slice_sync.synced.clear()
        self.slice_sync.request_sync()
        try:
            async with asyncio.timeout(float(arguments.get("timeout_s", "60"))):
                await self.slice_sync.synced.wait()
        except TimeoutError:
            return f"同步未完成，将在连接恢复后继续：{self.slice_sync.last_error}"
        return f"初始数据已同步到第 {self.slices.version} 版，共 {self.slices.count()} 人"

    def _revoked(self) -> None:
        if self.guard.verdict.reason != "revoked":
            self.guard.mark_revoked()
            self.telemetry.emit(
                device_pb2.Event.KIND_LICENCE_REFUSED, self.guard.verdict.message, reason="revoked"
            )

    def _keys(self, keys: dict[int, bytes]) -> None:
        enrolment = self.store.enrolment()
        fresh = {str(v): k.hex() for v, k in keys.items()}
        if fresh and fresh != enrolment.upload_keys:
            enrolment.upload_keys = fresh
            self.store.save_enrolment(enrolment)
            log.info("upload keys refreshed", versions=sorted(keys))

    def _rejected(self, ack: data_pb2.RecordAck) -> None:
        self.telemetry.emit(
            device_pb2.Event.KIND_UPLOAD_REJECTED,
            ack.reason,
            record_id=ack.record_id,
            reason=ack.reason_code,
        )

    def heartbeat(self) -> device_pb2.Heartbeat:
        stats = self.outbox.stats()
        verdict = self.guard.verdict
        self.sequence += 1
        beat = device_pb2.Heartbeat(
            device_id=self.store.enrolment().device_id,
            sequence=self.sequence,
            uptime_s=self.clock.monotonic() - self.started,
            software_version=self.software_version,
            profile=self.profile.name,
            licence_days_left=verdict.days_left,
            collection_allowed=verdict.allowed,
            collection_refusal=verdict.message if not verdict.allowed else "",
            outbox_depth=stats.pending,
            oldest_unsent_age_s=stats.oldest_pending_age_s,
            records_sealed=stats.sealed_total,
            records_acked=stats.acked,
            disk_free_bytes=shutil.disk_usage(self.settings.state_dir).free,
            reader=self.hardware.reader_state,
            camera=self.hardware.camera_state,
            clock_skew_s=self.data.clock_skew_s,
            township_code=self.store.enrolment().township_code,
        )
        beat.sent_at.FromDatetime(self.clock.now())
        if self.hardware.last_card_read is not None:
            beat.last_card_read.FromDatetime(self.hardware.last_card_read)
        return beat


async def run_daemon(settings: EdgeSettings, stop: asyncio.Event, clock: Clock) -> None:
    try:
        await Daemon(settings, clock).run(stop)
    except EnrollmentError as exc:
        raise ConfigError(f"注册被拒绝：{exc}") from exc
