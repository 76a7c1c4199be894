"""Commands: the controller's tracking (pending → sent → acked / failed / rejected / expired) and
the device's handler (expiry, repeats, arguments, hooks, the log tail, the wipe), in virtual
time without a broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Command
from controller.demo.simulated_fleet import register_simulated
from controller.fleet.commands import (
    CommandSender,
    apply_ack,
    claim,
    due_for_sending,
    expire_due,
    issue_command,
)
from controller.fleet.telemetry_store import DeviceStateStore
from edge.commands import CommandHandler, CommandHooks, erase_device_state
from edge.identity import IdentityStore
from edge.licence_guard import LicenceGuard
from edge.log_tail import LogTail
from muster import commands as catalogue
from muster.clock import VirtualClock
from muster.errors import ConfigError
from muster.fleet_layout import simulated_device
from muster.logs import configure_logging
from muster.v1 import device_pb2

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEVICE = simulated_device(0).device_id
OTHER = simulated_device(1).device_id
Ack = device_pb2.CommandAck


def ack(command_id: str, result: Ack.Result.ValueType, message: str = "", output: str = "") -> Ack:
    return Ack(command_id=command_id, result=result, message=message, output=output)


def test_command_lifecycle_on_the_controller(sessions: sessionmaker[Session]) -> None:
    """Issued pending, claimed once (a second claimer loses), acked only by its own device, and
    a finished command ignores later acks."""
    register_simulated(sessions, 2, now=T0)
    with sessions.begin() as session:
        command_id = issue_command(session, DEVICE, "upload-logs", now=T0).id
    with sessions.begin() as session:
        due = due_for_sending(session)
        assert [c.id for c in due] == [command_id]
        assert claim(session, due[0], T0)
        assert not claim(session, due[0], T0)  # another controller process got there first
    with sessions.begin() as session:
        assert due_for_sending(session) == []
        assert not apply_ack(session, OTHER, ack(command_id, Ack.RESULT_OK), T0)
        assert apply_ack(session, DEVICE, ack(command_id, Ack.RESULT_OK, "好", "log"), T0)
        assert not apply_ack(session, DEVICE, ack(command_id, Ack.RESULT_FAILED), T0)
    with sessions() as session:
        command = session.get(Command, command_id)
        assert command is not None
        assert (command.state, command.result_message, command.output) == ("acked", "好", "log")
        assert command.send_count == 1


def test_unanswered_commands_expire_and_sent_ones_are_resent_when_the_device_returns(
    sessions: sessionmaker[Session],
) -> None:
    """Without an ack before expires_at a command ends 'expired'; a sent command is handed to
    the broker again when its device comes back online after it was sent."""
    register_simulated(sessions, 1, now=T0)
    with sessions.begin() as session:
        short = issue_command(session, DEVICE, "restart", now=T0, expires_in=timedelta(minutes=5))
        long = issue_command(session, DEVICE, "set-log-level", {"level": "debug"}, now=T0)
        assert long.arguments == {"level": "DEBUG"}
    with sessions.begin() as session:
        for command in due_for_sending(session):
            claim(session, command, T0)
    DeviceStateStore(sessions, VirtualClock(T0 + timedelta(minutes=1))).apply(
        [connected(DEVICE, T0 + timedelta(minutes=1))]
    )
    with sessions.begin() as session:
        assert {c.id for c in due_for_sending(session)} == {short.id, long.id}
        assert expire_due(session, T0 + timedelta(minutes=6)) == 1
    with sessions() as session:
        expired = session.get(Command, short.id)
        assert expired is not None and expired.state == "expired"


def connected(device: str, since: datetime) -> tuple[str, str, bytes]:
    """A device's retained online status, stamped ``since`` by the device's own clock."""
    status = device_pb2.DeviceStatus(device_id=device, state=device_pb2.DeviceStatus.STATE_ONLINE)
    status.since.FromDatetime(since)
    return (device, "status", status.SerializeToString())


@pytest.mark.parametrize("skew", [timedelta(hours=5), -timedelta(hours=5)])
def test_a_device_whose_clock_is_off_gets_a_sent_command_again_once_it_reconnects(
    sessions: sessionmaker[Session], skew: timedelta
) -> None:
    """The resend follows the centre's clock, not the device's stamp: a clock 5 h ahead used to
    have its sent commands handed to the broker at every pass, one 5 h behind never again after
    it reconnected."""
    register_simulated(sessions, 1, now=T0)
    clock = VirtualClock(T0)
    store = DeviceStateStore(sessions, clock)
    store.apply([connected(DEVICE, T0 + skew)])
    with sessions.begin() as session:
        command = issue_command(session, DEVICE, "sync-slice", now=clock.now())
        assert claim(session, command, clock.now())
    clock.advance_now(60)
    with sessions.begin() as session:
        assert due_for_sending(session) == []  # sent while it was connected: not again
    clock.advance_now(60)
    store.apply([connected(DEVICE, clock.now() + skew)])  # the daemon restarted: a new session
    with sessions.begin() as session:
        due = due_for_sending(session)
        assert [c.id for c in due] == [command.id]
        assert claim(session, due[0], clock.now())
    clock.advance_now(60)
    store.apply([connected(DEVICE, clock.now() - timedelta(seconds=60) + skew)])  # replayed
    with sessions.begin() as session:
        assert due_for_sending(session) == []


async def test_sender_publishes_due_commands_once(sessions: sessionmaker[Session]) -> None:
    """The sender hands each due command to the broker once, on the device's cmd topic, as a
    Command message the device can decode."""
    register_simulated(sessions, 1, now=T0)
    with sessions.begin() as session:
        issue_command(session, DEVICE, "sync-slice", now=T0)
    published: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> None:
        published.append((topic, payload))

    sender = CommandSender(sessions, VirtualClock(T0))
    assert await sender.send_due(publish) == 1
    assert await sender.send_due(publish) == 0
    topic, payload = published[0]
    assert topic == f"muster/v1/dev/{DEVICE}/cmd"
    assert device_pb2.Command.FromString(payload).kind == device_pb2.Command.KIND_SYNC_SLICE


@pytest.mark.parametrize(
    ("device_id", "kind", "arguments", "expected"),
    [
        ("no-such-device", "restart", {}, "没有编号为"),
        (DEVICE, "reboot", {}, "未知命令"),
        (DEVICE, "restart", {"now": "yes"}, "不接受参数"),
        (DEVICE, "set-log-level", {"level": "LOUD"}, "level"),
        (DEVICE, "wipe", {}, "confirm=yes"),
        (DEVICE, "upload-logs", {"max_bytes": "many"}, "max_bytes"),
    ],
)
def test_bad_commands_are_refused_and_change_nothing(
    sessions: sessionmaker[Session],
    device_id: str,
    kind: str,
    arguments: dict[str, str],
    expected: str,
) -> None:
    """Unknown devices, kinds and arguments are refused with a message naming the problem, and
    nothing is stored."""
    register_simulated(sessions, 1, now=T0)
    with pytest.raises(ConfigError, match=expected), sessions.begin() as session:
        issue_command(session, device_id, kind, arguments, now=T0)
    with sessions() as session:
        assert session.query(Command).count() == 0


def command(kind: str, *, expires: datetime, command_id: str = "c1", **args: str) -> bytes:
    return catalogue.build(
        command_id, kind, args, issued_at=T0, expires_at=expires
    ).SerializeToString()


def handler(tmp_path: Path, hooks: CommandHooks | None = None) -> CommandHandler:
    store = IdentityStore(tmp_path)
    guard = LicenceGuard(store, simulated_seed="unit", clock=VirtualClock(T0))
    tail = LogTail(max_lines=50)
    return CommandHandler("dev-1", tmp_path, guard, tail, VirtualClock(T0), hooks or CommandHooks())


async def test_device_rejects_expired_and_answers_repeats_without_rerunning(
    tmp_path: Path,
) -> None:
    """An expired command is rejected unrun; a command delivered twice (QoS 1) is run once and
    the repeat gets the same answer, even across a daemon restart (the journal is on disk)."""
    calls: list[dict[str, str]] = []

    async def sync(arguments: dict[str, str]) -> str:
        calls.append(arguments)
        return "已同步"

    hooks = CommandHooks(sync_slice=sync)
    expired = await handler(tmp_path, hooks).handle(
        command("sync-slice", expires=T0 - timedelta(seconds=1))
    )
    assert expired is not None and expired.ack.result == Ack.RESULT_REJECTED
    assert "过期" in expired.ack.message and calls == []

    payload = command("sync-slice", expires=T0 + timedelta(hours=1), command_id="c2")
    first = await handler(tmp_path, hooks).handle(payload)
    again = await handler(tmp_path, hooks).handle(payload)
    assert first is not None and again is not None
    assert first.ack.result == again.ack.result == Ack.RESULT_OK
    assert first.ack.message == "已同步" == again.ack.message
    assert len(calls) == 1
    assert await handler(tmp_path).handle(b"\xff\xff not a command") is None


async def test_device_without_slice_hook_says_there_is_nothing_to_sync(tmp_path: Path) -> None:
    """sync-slice fails with the operator message when no slice part is registered."""
    outcome = await handler(tmp_path).handle(command("sync-slice", expires=T0 + timedelta(hours=1)))
    assert outcome is not None
    assert (outcome.ack.result, outcome.ack.message) == (Ack.RESULT_FAILED, "没有可同步的数据切片")


@pytest.fixture
def logging_configured() -> Iterator[None]:
    """The daemon's logging setup for one test, put back to structlog's defaults afterwards."""
    configure_logging("INFO")
    yield
    structlog.reset_defaults()


async def test_log_level_and_log_tail(tmp_path: Path, logging_configured: None) -> None:
    """set-log-level changes what the daemon logs; upload-logs returns the newest redacted lines
    within the size asked for."""
    h = handler(tmp_path)
    h.log_tail.install()
    log = structlog.get_logger("test")
    log.debug("hidden at INFO")
    log.info("reader ready", id_number="110101199003077777")
    level = await h.handle(command("set-log-level", expires=T0 + timedelta(hours=1), level="debug"))
    assert level is not None and level.ack.result == Ack.RESULT_OK
    log.debug("visible at DEBUG")
    logs = await h.handle(
        command("upload-logs", expires=T0 + timedelta(hours=1), command_id="c9", max_bytes="2000")
    )
    assert logs is not None and logs.ack.result == Ack.RESULT_OK
    assert "visible at DEBUG" in logs.ack.output and "hidden at INFO" not in logs.ack.output
    assert "110101199003077777" not in logs.ack.output and "110101********7777" in logs.ack.output
    assert len(h.log_tail.tail(40).encode()) <= 40


async def test_restart_and_wipe_act_after_the_ack(tmp_path: Path) -> None:
    """restart and wipe answer first and leave the acting to the daemon."""
    restart = await handler(tmp_path).handle(command("restart", expires=T0 + timedelta(hours=1)))
    assert restart is not None and restart.then == "restart"
    wipe = await handler(tmp_path).handle(
        command("wipe", expires=T0 + timedelta(hours=1), command_id="w", confirm="yes")
    )
    assert wipe is not None and wipe.then == "wipe" and wipe.ack.result == Ack.RESULT_OK


def test_wipe_erases_identity_outbox_and_slices_only(tmp_path: Path) -> None:
    """What a wipe removes: the identity, the outbox and slices, and nothing else."""
    (tmp_path / "commands.json").write_text("{}")
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "device.key").write_text("key")
    (tmp_path / "outbox.sqlite3").write_text("ciphertext")
    (tmp_path / "slices").mkdir()
    (tmp_path / "slices" / "v1").write_text("slice")
    (tmp_path / "keep.txt").write_text("not ours")
    removed = erase_device_state(tmp_path)
    assert {"identity", "outbox.sqlite3", "slices", "commands.json"} <= set(removed)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
