"""A fleet of lightweight simulated devices in one process, speaking the real MQTT wire contract:
retained status, heartbeats at each profile's interval, events (reader faults), and acks to
commands. For the telemetry benchmark and for trying the admin pages at national scale.

Why not N daemons: 100,000 daemon processes (or 100,000 TLS connections) do not fit one 2-core
machine. Devices are multiplexed over a few MQTT connections to a plain (anonymous) broker
instead; the broker's ACL, which needs one certificate per device, is exercised by the real
daemons in the integration tests. Over TLS (``tls_context``) the simulator connects as one identity
the broker lets publish for every device (tests/fixtures/nats_cluster.py ``allow_simulator``),
never as a device. The devices' ids and townships come from
``muster.fleet_layout``, the same numbering the controller's ``register-simulated`` uses.

Realism: each device keeps its own heartbeat phase, sequence, uptime, outbox (a random walk that
grows on a few "stuck" devices), licence days left, clock skew and reader; a configurable share
of devices is offline (their retained status is the last will from a while ago) or hangs (status
online, heartbeats stop), and reader faults come at a configurable rate.
"""

from __future__ import annotations

import heapq
import random
import ssl
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import structlog
from google.protobuf.message import DecodeError
from paho.mqtt.enums import CallbackAPIVersion

from muster import __version__, topics
from muster import commands as catalogue
from muster.clock import Clock
from muster.errors import BrokenError
from muster.fleet_layout import SimulatedDevice, simulated_fleet
from muster.mqtt import parse_broker_url
from muster.profiles import load_profile
from muster.v1 import device_pb2

log = structlog.get_logger(__name__)

Ack = device_pb2.CommandAck


@dataclass
class FleetShape:
    """How the simulated fleet behaves."""

    offline_share: float = 0.03  # offline since a random moment in the last 3 days
    hang_share: float = 0.01  # status online but heartbeats stop after the first one
    stuck_share: float = 0.01  # uploads stuck: the outbox grows every heartbeat
    skewed_share: float = 0.005  # clock more than 5 minutes off
    expiring_share: float = 0.01  # licence expiring within 30 days
    reader_faults_per_hour: float = 0.05  # per device, on average
    interval_s: float | None = None  # override every profile's heartbeat interval
    seed: int = 7


@dataclass
class _Device:
    sim: SimulatedDevice
    interval_s: float
    mode: str  # "ok", "offline", "hang", "stuck"
    licence_days: int
    clock_skew_s: float
    started: float
    sequence: int = 0
    outbox: int = 0
    sealed: int = 0
    acked: int = 0
    connection: int = 0
    answered: dict[str, Ack.Result.ValueType] = field(default_factory=dict)


def _status(device_id: str, online: bool, since: datetime) -> bytes:
    message = device_pb2.DeviceStatus(
        device_id=device_id,
        state=device_pb2.DeviceStatus.STATE_ONLINE
        if online
        else device_pb2.DeviceStatus.STATE_OFFLINE,
        graceful=False,
    )
    message.since.FromDatetime(since)
    return message.SerializeToString()


class FleetSimulator:
    def __init__(
        self,
        broker_url: str,
        devices: int,
        *,
        connections: int = 4,
        shape: FleetShape | None = None,
        first: int = 0,
        qos: int = 1,  # at most this; each kind at its own (topics.QOS), as a device publishes
        clock: Clock,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self._broker = parse_broker_url(broker_url)
        if self._broker.tls and tls_context is None:
            raise BrokenError(
                "the fleet simulator multiplexes many devices on one connection, which a broker "
                "with per-device certificates refuses; point it at a plain mqtt:// listener, or "
                "give it the TLS context of an identity the broker lets publish for every device"
            )
        self._tls_context = tls_context if self._broker.tls else None
        self.shape = shape or FleetShape()
        self._rng = random.Random(self.shape.seed)
        self._clock = clock
        self._qos = qos
        self._connections = max(1, connections)
        intervals = {
            name: self.shape.interval_s or load_profile(name).uplink.heartbeat_interval_s
            for name in ("fixed-kiosk", "portable-tablet")
        }
        now = self._clock.monotonic()
        self.devices: dict[str, _Device] = {}
        for sim in simulated_fleet(devices, first):
            roll = self._rng.random()
            s = self.shape
            mode = (
                "offline"
                if roll < s.offline_share
                else "hang"
                if roll < s.offline_share + s.hang_share
                else "stuck"
                if roll < s.offline_share + s.hang_share + s.stuck_share
                else "ok"
            )
            self.devices[sim.device_id] = _Device(
                sim=sim,
                interval_s=intervals[sim.profile],
                mode=mode,
                licence_days=self._rng.randint(5, 29)
                if self._rng.random() < s.expiring_share
                else self._rng.randint(60, 365),
                clock_skew_s=self._rng.choice((-1, 1)) * self._rng.uniform(400, 900)
                if self._rng.random() < s.skewed_share
                else self._rng.gauss(0, 1.5),
                started=now - self._rng.uniform(0, 86400),
                outbox=self._rng.randint(0, 5),
                connection=sim.index % self._connections,
            )
        self._clients: list[mqtt.Client] = []
        self._last: dict[int, mqtt.MQTTMessageInfo] = {}
        self._lock = threading.Lock()
        self.sent = 0
        self.acks_sent = 0
        self.events_sent = 0

    # --- messages -------------------------------------------------------------------------

    def heartbeat(self, device: _Device, now: datetime) -> bytes:
        device.sequence += 1
        if device.mode == "stuck":
            device.outbox += self._rng.randint(1, 4)
            device.sealed += device.outbox
        else:
            new = self._rng.randint(0, 3)
            device.sealed += new
            sent = min(device.outbox + new, self._rng.randint(0, 6))
            device.acked += sent
            device.outbox = max(0, device.outbox + new - sent)
        beat = device_pb2.Heartbeat(
            device_id=device.sim.device_id,
            sequence=device.sequence,
            uptime_s=self._clock.monotonic() - device.started,
            software_version=__version__,
            profile=device.sim.profile,
            licence_days_left=device.licence_days,
            collection_allowed=True,
            outbox_depth=device.outbox,
            oldest_unsent_age_s=device.outbox * 30.0,
            records_sealed=device.sealed,
            records_acked=device.acked,
            disk_free_bytes=40 * 1024**3,
            reader=device_pb2.COMPONENT_STATE_OK,
            camera=device_pb2.COMPONENT_STATE_OK,
            clock_skew_s=device.clock_skew_s,
            township_code=device.sim.township_code,
        )
        beat.sent_at.FromDatetime(now)
        return beat.SerializeToString()

    def reader_fault(self, device: _Device, now: datetime) -> bytes:
        event = device_pb2.Event(
            device_id=device.sim.device_id,
            kind=device_pb2.Event.KIND_READER_FAULT,
            message="读卡器无响应，正在重试",
            details={"driver": "sam"},
        )
        event.at.FromDatetime(now)
        return event.SerializeToString()

    def answer(self, device: _Device, payload: bytes, now: datetime) -> bytes | None:
        """The ack a simulated device gives a command: the same answers as the real handler."""
        try:
            command = device_pb2.Command.FromString(payload)
        except DecodeError:
            return None
        result: Ack.Result.ValueType = Ack.RESULT_OK
        message, output = "", ""
        kind = catalogue.NAMES.get(command.kind)
        if command.command_id in device.answered:
            result = device.answered[command.command_id]
            message = "重复的命令，已执行过"
        elif command.HasField("expires_at") and command.expires_at.ToDatetime(tzinfo=UTC) < now:
            result, message = Ack.RESULT_REJECTED, "命令已过期，未执行"
        elif kind is None:
            result, message = Ack.RESULT_REJECTED, "设备不认识这个命令，未执行"
        elif kind == "sync-slice":
            result, message = Ack.RESULT_FAILED, "没有可同步的数据切片"
        elif kind == "restart":
            message = "设备即将重启"
            device.started = self._clock.monotonic()
        elif kind == "upload-logs":
            output = f"{now.isoformat()} [info] simulated device {device.sim.device_id} running"
            message = f"已上传最近 {len(output.encode())} 字节日志"
        elif kind == "revoke":
            message = "授权已撤销：设备继续上报，但不再采集"
        elif kind == "renew-licence":
            message = f"授权有效，剩余 {device.licence_days} 天"
        elif kind == "wipe":
            message = "设备即将停止并清除身份与数据"
            device.mode = "offline"
        else:
            message = "已执行"
        device.answered[command.command_id] = result
        ack = Ack(
            command_id=command.command_id,
            device_id=device.sim.device_id,
            result=result,
            message=message,
            output=output,
        )
        ack.at.FromDatetime(now)
        return ack.SerializeToString()

    # --- transport ------------------------------------------------------------------------

    def _publish(
        self, device: _Device, kind: topics.Kind, payload: bytes, retain: bool = False
    ) -> None:
        client = self._clients[device.connection]
        info = client.publish(
            topics.topic(device.sim.device_id, kind),
            payload,
            qos=min(self._qos, topics.QOS[kind]),
            retain=retain,
        )
        self._last[device.connection] = info  # a connection sends in order: its last is enough

    def _on_message(
        self, _client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        parsed = topics.parse(message.topic)
        if parsed is None or parsed[1] != "cmd":
            return
        device = self.devices.get(parsed[0])
        if device is None or device.mode == "offline":
            return  # not ours, or switched off: the command waits in the broker / times out
        ack = self.answer(device, bytes(message.payload), self._clock.now())
        if ack is not None:
            self._publish(device, "ack", ack)
            with self._lock:
                self.acks_sent += 1

    def connect(self) -> None:
        for n in range(self._connections):
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=f"muster-fleet-sim-{self.shape.seed}-{n}",
                clean_session=True,
            )
            client.max_inflight_messages_set(2000)
            client.on_message = self._on_message
            if self._tls_context is not None:
                client.tls_set_context(self._tls_context)
            try:
                client.connect(self._broker.host, self._broker.port, keepalive=60)
            except OSError as exc:
                raise BrokenError(
                    f"broker {self._broker.host}:{self._broker.port} unreachable: {exc}"
                ) from exc
            client.subscribe(f"{topics.PREFIX}/+/cmd", qos=1)
            client.loop_start()
            self._clients.append(client)

    def close(self) -> None:
        for client in self._clients:
            client.disconnect()
            client.loop_stop()

    def _wait_drained(self, timeout: float = 30.0) -> None:
        """Wait until every connection handed its queued messages to the broker."""
        deadline = self._clock.monotonic() + timeout
        # One connection delivers in order, so its last message out means all of them are.
        for info in list(self._last.values()):
            try:
                info.wait_for_publish(max(0.1, deadline - self._clock.monotonic()))
            except (RuntimeError, ValueError):
                log.warning("a connection closed before its messages were delivered")

    def announce(self) -> None:
        """Retained statuses: online for live devices, an old last will for offline ones."""
        now = self._clock.now()
        for device in self.devices.values():
            if device.mode == "offline":
                since = now - timedelta(seconds=self._rng.uniform(3600, 3 * 86400))
                self._publish(device, "status", _status(device.sim.device_id, False, since), True)
            else:
                self._publish(device, "status", _status(device.sim.device_id, True, now), True)
        self._wait_drained()

    def run(
        self,
        duration_s: float | None,
        *,
        stop: threading.Event | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> int:
        """Heartbeats on schedule until ``duration_s`` passes (or ``stop`` is set); returns how
        many heartbeats were sent. Each device's first beat falls at a random point of its
        interval, so the load is even from the start."""
        stop = stop or threading.Event()
        start = self._clock.monotonic()
        queue: list[tuple[float, str]] = [
            (start + self._rng.uniform(0, d.interval_s), d.sim.device_id)
            for d in self.devices.values()
            if d.mode != "offline"
        ]
        heapq.heapify(queue)
        fault_p = self.shape.reader_faults_per_hour / 3600.0
        next_report = start + 5
        last_sent = 0
        while not stop.is_set():
            now_m = self._clock.monotonic()
            if duration_s is not None and now_m - start >= duration_s:
                break
            wall = self._clock.now()
            while queue and queue[0][0] <= now_m:
                due, device_id = heapq.heappop(queue)
                device = self.devices[device_id]
                if device.mode == "offline":
                    continue
                self._publish(device, "telemetry", self.heartbeat(device, wall))
                self.sent += 1
                if self._rng.random() < fault_p * device.interval_s:
                    self._publish(device, "event", self.reader_fault(device, wall))
                    self.events_sent += 1
                if device.mode != "hang":
                    heapq.heappush(queue, (due + device.interval_s, device_id))
            if progress is not None and now_m >= next_report:
                rate = (self.sent - last_sent) / (now_m - next_report + 5)
                progress(
                    f"[{now_m - start:6.0f}s] 心跳 heartbeats {self.sent} ({rate:,.0f}/s) · "
                    f"events {self.events_sent} · acks {self.acks_sent}"
                )
                last_sent, next_report = self.sent, now_m + 5
            wait = (queue[0][0] - self._clock.monotonic()) if queue else 0.2
            stop.wait(min(max(wait, 0.0), 0.2))
        self._wait_drained()
        return self.sent

    def burst(self, count: int, kind: str = "telemetry") -> float:
        """Send ``count`` heartbeats (or reader-fault events) as fast as possible, round robin
        over the live devices; returns the seconds until all were handed to the broker."""
        live = [d for d in self.devices.values() if d.mode != "offline"]
        wall = self._clock.now()
        start = self._clock.monotonic()
        for n in range(count):
            device = live[n % len(live)]
            if kind == "event":
                self._publish(device, "event", self.reader_fault(device, wall))
                self.events_sent += 1
            else:
                self._publish(device, "telemetry", self.heartbeat(device, wall))
                self.sent += 1
        self._wait_drained(timeout=600)
        return self._clock.monotonic() - start


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


__all__ = ["FleetShape", "FleetSimulator", "print_progress"]
