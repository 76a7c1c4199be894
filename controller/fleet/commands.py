"""Commands to devices, tracked from issue to ack.

A command is stored ``pending`` first (so it survives a controller restart), then handed to the
broker with QoS 1 on the device's ``cmd`` topic (``sent``). Devices hold a persistent MQTT session,
so the broker keeps it for a device that is offline and delivers it when the device returns. The
device's ack on ``.../ack`` ends it as ``acked``, ``failed`` or ``rejected``; without an ack before
``expires_at`` it ends ``expired``. A command still waiting when its device comes back online is
sent again (the broker may have lost the session); devices ignore a command id they already ran.

Several controller processes may run the sender: a command is claimed with a conditional UPDATE,
so only one of them publishes it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import aiomqtt
import structlog
from sqlalchemy import String, Table, and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Command, Device
from muster import commands as catalogue
from muster import topics
from muster.clock import Clock
from muster.errors import NotFoundError
from muster.v1 import device_pb2
from muster.wire_values import fit_text, timestamp_or_none

__all__ = [
    "OPEN_STATES",
    "CommandSender",
    "Publish",
    "apply_ack",
    "claim",
    "due_for_sending",
    "encode",
    "expire_due",
    "issue_command",
    "mqtt_publisher",
]

log = structlog.get_logger(__name__)
_ID_LENGTH = cast(String, cast(Table, Command.__table__).c.id.type).length

PENDING, SENT, ACKED, FAILED, REJECTED, EXPIRED = (
    "pending",
    "sent",
    "acked",
    "failed",
    "rejected",
    "expired",
)
OPEN_STATES = (PENDING, SENT)
_RESULTS = {
    device_pb2.CommandAck.RESULT_OK: ACKED,
    device_pb2.CommandAck.RESULT_FAILED: FAILED,
    device_pb2.CommandAck.RESULT_REJECTED: REJECTED,
}


def issue_command(
    session: Session,
    device_id: str,
    kind: str,
    arguments: dict[str, str] | None = None,
    *,
    now: datetime,
    expires_in: timedelta | None = None,
    issued_by: str = "",
) -> Command:
    """Store a new command for one device. Raises ConfigError (nothing stored) for an unknown
    device, kind or argument."""
    clean = catalogue.validate(kind, dict(arguments or {}))
    validity = catalogue.validity(expires_in)
    device = session.get(Device, device_id)
    if device is None:
        raise NotFoundError(f"没有编号为 {device_id} 的设备：请检查设备编号")
    command = Command(
        id=uuid.uuid4().hex,
        device_id=device_id,
        kind=kind,
        arguments=clean,
        state=PENDING,
        issued_by=issued_by,
        issued_at=now,
        expires_at=now + validity,
        send_count=0,
        result_message="",
        output="",
    )
    session.add(command)
    if kind == "revoke" and device.revoked_at is None:
        # Revocation must hold even if the device never receives the command: its uploads are
        # refused from now on, and the data link tells it so at its next contact.
        device.revoked_at = now
        device.revoked_reason = clean.get("reason") or "由管理员通过命令撤销"
    return command


def encode(command: Command) -> bytes:
    return catalogue.build(
        command.id,
        command.kind,
        {str(k): str(v) for k, v in command.arguments.items()},
        issued_at=command.issued_at,
        expires_at=command.expires_at,
    ).SerializeToString()


def apply_ack(session: Session, device_id: str, ack: device_pb2.CommandAck, now: datetime) -> bool:
    """Record a device's ack. Only the device a command was for can end it (its topic says who
    sent the ack, and the broker's ACL ties the topic to the certificate); a repeated ack or one
    for an already finished command changes nothing."""
    # An id no command has (too long for the column, a NUL PostgreSQL cannot compare) is
    # refused before the query, which would fail the batch it came in.
    fits = fit_text(ack.command_id, _ID_LENGTH) == ack.command_id
    command = session.get(Command, ack.command_id) if fits else None
    if command is None or command.device_id != device_id:
        log.warning("ack for an unknown command", device_id=device_id, command_id=ack.command_id)
        return False
    if command.state not in OPEN_STATES:
        return False
    command.state = _RESULTS.get(ack.result, FAILED)
    command.finished_at = timestamp_or_none(ack, "at") or now
    command.result_message = fit_text(ack.message)
    command.output = fit_text(ack.output[: catalogue.MAX_LOG_BYTES])
    return True


def expire_due(session: Session, now: datetime) -> int:
    """Commands whose validity ran out without an ack end as expired."""
    result = session.execute(
        update(Command)
        .where(Command.state.in_(OPEN_STATES), Command.expires_at < now)
        .values(state=EXPIRED, finished_at=now, result_message="超时：设备未在有效期内确认")
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def due_for_sending(session: Session, limit: int = 500) -> list[Command]:
    """Pending commands, and sent ones whose device came back online after they were sent."""
    query = (
        select(Command)
        .join(Device, Device.id == Command.device_id)
        .where(
            or_(
                Command.state == PENDING,
                and_(
                    Command.state == SENT,
                    Device.online.is_(True),
                    # Both the centre's clock: the device's own stamp may run hours off it.
                    Device.status_received_at > Command.sent_at,
                ),
            )
        )
        .order_by(Command.issued_at)
        .limit(limit)
    )
    return list(session.scalars(query))


def claim(session: Session, command: Command, now: datetime) -> bool:
    """Mark one command sent, unless another controller process got there first."""
    result = session.execute(
        update(Command)
        .where(
            Command.id == command.id,
            Command.state == command.state,
            Command.send_count == command.send_count,
        )
        .values(state=SENT, sent_at=now, send_count=command.send_count + 1)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


Publish = Callable[[str, bytes], Awaitable[None]]


@dataclass
class CommandSender:
    """Hands due commands to the broker and expires the overdue ones, every ``interval_s``."""

    sessions: sessionmaker[Session]
    clock: Clock
    interval_s: float = 0.5
    sent: int = 0

    def _claim_due(self) -> list[tuple[str, str, bytes]]:
        now = self.clock.now()
        out: list[tuple[str, str, bytes]] = []
        with self.sessions.begin() as session:
            expired = expire_due(session, now)
            if expired:
                log.info("commands expired", count=expired)
            for command in due_for_sending(session):
                if claim(session, command, now):
                    out.append((command.id, command.device_id, encode(command)))
        return out

    def _unclaim(self, command_id: str) -> None:
        # The broker went away between the claim and the publish: try again later.
        with self.sessions.begin() as session:
            session.execute(
                update(Command)
                .where(Command.id == command_id, Command.state == SENT)
                .values(state=PENDING)
                .execution_options(synchronize_session=False)
            )

    async def send_due(self, publish: Publish) -> int:
        batch = await asyncio.to_thread(self._claim_due)
        done = 0
        for command_id, device_id, payload in batch:
            try:
                await publish(topics.topic(device_id, "cmd"), payload)
            except Exception:
                log.warning("command not handed to the broker; will retry", command_id=command_id)
                await asyncio.to_thread(self._unclaim, command_id)
                continue
            done += 1
            log.info("command sent", command_id=command_id, device_id=device_id)
        self.sent += done
        return done

    async def run(self, publish: Callable[[], Publish | None]) -> None:
        """Every ``interval_s`` of the clock, send what is due. ``publish()`` gives the current
        broker connection's publish, or None while it is down. A failure (the database away)
        ends the run; the controller's supervisor restarts it after a backoff."""
        while True:
            await self.clock.sleep(self.interval_s)
            sender = publish()
            if sender is not None:
                await self.send_due(sender)


def mqtt_publisher(client: Callable[[], aiomqtt.Client | None]) -> Callable[[], Publish | None]:
    """Publish through whatever broker connection ``client()`` currently returns: QoS 1, never
    retained (a retained command would run again on every reconnect)."""

    def current() -> Publish | None:
        live = client()
        if live is None:
            return None

        async def publish(topic: str, payload: bytes) -> None:
            await live.publish(topic, payload, qos=1, retain=False)

        return publish

    return current
