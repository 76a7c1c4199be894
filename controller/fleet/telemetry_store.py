"""Applies decoded telemetry (retained status, heartbeats, events, command acks) to the devices
table, a batch at a time, so one controller process keeps up with a national fleet.

A batch costs a few statements whatever its size: one SELECT of the devices it names (only the
columns the rules read), one executemany UPDATE per set of columns written (a beat, a status),
and executemany INSERTs of their events and state changes; a device's several messages in one
batch are folded in memory into one row written once. Messages are applied in arrival order in memory first, so a device's last heartbeat and
its goodbye in the same batch end as "offline", as they happened. Which status replaces the one
held is ``supersedes``'s rule: the device's own stamps order only what its next heartbeat would
set right, since its clock may run hours off and its last will carries its connect time.

Nothing from a revoked device is applied but the acks of commands the centre sent it (the revoke
itself, a wipe: they change only those commands' state): its status, heartbeats and events are
dropped, logged and counted (``dropped_revoked``), checked against ``devices.revoked_at`` in the same SELECT
that reads the batch's devices, so a session the broker has not closed yet changes nothing.
The consumer drops them even earlier, on arrival, from the cached set ``revoked_devices``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import structlog
from google.protobuf.message import DecodeError
from sqlalchemy import (
    Connection,
    Dialect,
    String,
    Table,
    Update,
    bindparam,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, DeviceEvent, DeviceStateChange, UtcDateTime
from controller.fleet.commands import apply_ack
from controller.fleet.rules import OFFLINE, ONLINE
from muster.clock import Clock
from muster.v1 import device_pb2
from muster.wire_values import enum_name, finite_or_none, fit_int, fit_text, timestamp_or_none

log = structlog.get_logger(__name__)

Message = tuple[str, str, bytes]  # device id, kind, payload

_DEVICES = cast(Table, Device.__table__)
REVOKED_REFUSAL = "本机授权已被中心吊销，不能采集。"
# The columns telemetry owns; every UPDATE writes all of them so one statement serves the batch.
_MANAGED = (
    "online",
    "status_since",
    "status_received_at",
    "last_seen",
    "heartbeat_sequence",
    "outbox_depth",
    "licence_days_left",
    "collection_allowed",
    "collection_refusal",
    "clock_skew_s",
    "software_version",
    "last_heartbeat",
    "state",
    "state_reason",
    "backlog_rising",
)
_MANAGED_SET = frozenset(_MANAGED)
# Indexed, so written by a statement of their own (``_indexed_update``).
_INDEXED = ("online", "state")
_UNINDEXED_SET = _MANAGED_SET - frozenset(_INDEXED)
# What the handlers read. The rest of ``_MANAGED`` (last_seen, the last heartbeat's JSON, ...) is
# only ever overwritten, so it is not read back: decoding it cost more than the rest of a beat.
_READ = (
    "online",
    "status_since",
    "heartbeat_sequence",
    "outbox_depth",
    "collection_allowed",
    "software_version",
    "state",
    "state_reason",
    "backlog_rising",
)
# What a device reports, cut to the columns that keep it (see muster/wire_values.py).
_VERSION_LENGTH = cast(String, _DEVICES.c.software_version.type).length
_REFUSAL_LENGTH = cast(String, _DEVICES.c.collection_refusal.type).length
_STATE_CHANGES = cast(Table, DeviceStateChange.__table__)
_EVENTS = cast(Table, DeviceEvent.__table__)


@functools.lru_cache(maxsize=64)
def _update(columns: frozenset[str]) -> Update:
    """One UPDATE per set of columns a batch wrote (a status alone writes fewer than a beat).
    Never over a revoked device: a batch read just before the revocation committed must not
    write its state (collection allowed, online) back over what the revocation set."""
    return (
        update(_DEVICES)
        .where(_DEVICES.c.id == bindparam("b_id"), _DEVICES.c.revoked_at.is_(None))
        .values({name: bindparam(f"v_{name}") for name in sorted(columns)})
    )


@functools.cache
def _indexed_update() -> Update:
    """The indexed columns, written only where the row holds something else. SQLite rewrites an
    index entry for every indexed column in an UPDATE's SET, changed or not: with them in every
    beat's UPDATE a beat cost 15 µs in the database instead of 5.5. Deciding in the WHERE, not
    from what the batch read, keeps them right when the sweep marked a device stale between the
    batch's SELECT and its write (SQLite reads before its write transaction begins)."""
    return (
        update(_DEVICES)
        .where(
            _DEVICES.c.id == bindparam("b_id"),
            _DEVICES.c.revoked_at.is_(None),
            or_(*(_DEVICES.c[name] != bindparam(f"v_{name}") for name in _INDEXED)),
        )
        .values({name: bindparam(f"v_{name}") for name in _INDEXED})
    )


@functools.lru_cache(maxsize=64)
def _driver_update(
    dialect: Dialect, statement: Update
) -> tuple[str, tuple[str, ...], bool, dict[str, Callable[[Any], Any]]]:
    """The UPDATE as the driver's SQL, the parameters it takes in order, whether the driver takes
    them by position, and each column's conversion, once per dialect and statement."""
    compiled = statement.compile(dialect=dialect)
    positional = compiled.positiontup is not None
    names = tuple(compiled.positiontup or compiled.binds)
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in names:
        column = _DEVICES.c[_column(name)]
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    return str(compiled), names, positional, processors


def _column(parameter: str) -> str:
    """The column a parameter of ``_update`` / ``_indexed_update`` names (``v_online``: online,
    ``b_id``: id)."""
    return parameter[2:]


def _write(connection: Connection, statement: Update, rows: list[dict[str, Any]]) -> None:
    """executemany straight to the driver: SQLAlchemy's per-row parameter handling cost more than
    the database's work for a beat. Parameters are built a column at a time, each with its
    column's own conversion, a datetime converted once per distinct value (every beat's
    ``last_seen`` is the batch's now)."""
    if not rows:
        return  # an empty executemany would be sent as one execute without parameters
    sql, names, positional, processors = _driver_update(connection.dialect, statement)
    columns: dict[str, list[Any]] = {}
    for name in dict.fromkeys(names):
        key = _column(name)
        values = [row[key] for row in rows]
        processor = processors.get(name)
        if processor is not None:
            if isinstance(_DEVICES.c[key].type, UtcDateTime):
                once = {value: processor(value) for value in set(values)}
                values = [once[value] for value in values]
            else:
                values = [processor(value) for value in values]
        columns[name] = values
    if positional:
        connection.exec_driver_sql(sql, list(zip(*(columns[n] for n in names), strict=True)))
    else:
        connection.exec_driver_sql(
            sql,
            [
                dict(zip(columns, values, strict=True))
                for values in zip(*columns.values(), strict=True)
            ],
        )


def supersedes(held_online: bool, held_since: datetime, since: datetime) -> bool:
    """Whether a status stamped ``since`` replaces the one held (online or not, stamped
    ``held_since``).

    ``since`` is the device's clock, which may run hours off, and a last will carries the
    ``since`` of the connection it ends (the broker publishes what the device left with it when
    it connected), so it says nothing about when the will came. Stamps are compared only where
    a wrong answer heals itself:

    - held online: every status is news. An offline (a will, a goodbye) ends what is held,
      whatever its stamp; an online is the same connection again or a restarted daemon, whose
      beats count from 1 again whichever way its clock went.
    - held offline: only a later stamp. An older retained online replayed after a newer offline
      (a broker restarted from an old persistence file), or the late online of the very
      connection whose will is held (replicas committing out of order), changes nothing.

    A true online refused because a jumped clock stamped it early (or the goodbye held late)
    costs until its first beat, which brings the device back (``_heartbeat``), as does an old
    session's late will applied over a live one; a dead device held online would read online,
    then stale, for good."""
    return held_online or since > held_since


class DeviceStateStore:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self.dropped_revoked = 0

    def revoked_devices(self) -> frozenset[str]:
        """Every revoked device id, for the consumer's cache (one query per refresh)."""
        with self._sessions() as session:
            return frozenset(
                session.scalars(select(_DEVICES.c.id).where(_DEVICES.c.revoked_at.is_not(None)))
            )

    def apply(self, batch: list[Message]) -> int:
        """Apply a batch; returns how many messages changed something."""
        now = self._clock.now()
        ids = {device_id for device_id, _, _ in batch}
        applied = 0
        with self._sessions.begin() as session:
            names = ("id", "revoked", *_READ)
            rows: dict[str, dict[str, Any]] = {
                row[0]: dict(zip(names, row, strict=True))
                for row in session.execute(
                    select(
                        _DEVICES.c.id,
                        _DEVICES.c.revoked_at.is_not(None),
                        *(_DEVICES.c[name] for name in _READ),
                    )
                    .where(_DEVICES.c.id.in_(ids))
                    # Replicas sharing the telemetry may hold beats of the same devices: taking
                    # the rows in id order makes the second wait for the first (then read what it
                    # wrote) instead of deadlocking or writing an older beat over a newer one.
                    # NO KEY: events' foreign keys to these rows need not wait. SQLite ignores it.
                    .order_by(_DEVICES.c.id)
                    .with_for_update(key_share=True)
                )
            }
            revoked = {device_id for device_id, row in rows.items() if row["revoked"]}
            # What the centre knows, not what the device says: a revoked device collects nothing
            # here, however a revocation was made (the admin page, the revoke command).
            stale = [d for d in revoked if rows[d]["collection_allowed"] is not False]
            if stale:
                session.execute(
                    update(_DEVICES)
                    .where(_DEVICES.c.id.in_(stale))
                    .values(collection_allowed=False, collection_refusal=REVOKED_REFUSAL)
                )
            dirty: set[str] = set()
            events: list[dict[str, Any]] = []
            history: list[dict[str, Any]] = []
            for device_id, kind, payload in batch:
                row = rows.get(device_id)
                if row is None:
                    continue  # not enrolled here (yet): nothing to keep state on
                if device_id in revoked and kind != "ack":
                    self.dropped_revoked += 1
                    log.warning(
                        "telemetry of a revoked device dropped", device_id=device_id, kind=kind
                    )
                    continue
                try:
                    if kind == "event":
                        events.append(self._event(device_id, payload, now))
                        changed = True
                    elif kind == "ack":
                        ack = device_pb2.CommandAck.FromString(payload)
                        changed = apply_ack(session, device_id, ack, now)
                    elif kind == "status":
                        changed = self._status(row, payload, now, history)
                    elif kind == "telemetry":
                        changed = self._heartbeat(row, payload, now, history)
                    else:
                        changed = False
                except DecodeError:
                    log.warning("undecodable telemetry", device_id=device_id, kind=kind)
                    continue
                if changed and kind in ("status", "telemetry"):
                    dirty.add(device_id)
                applied += changed
            groups: dict[frozenset[str], list[dict[str, Any]]] = {}
            for device_id in dirty:
                row = rows[device_id]
                groups.setdefault(frozenset(row.keys() & _UNINDEXED_SET), []).append(row)
            connection = session.connection()
            for columns, written in groups.items():
                _write(connection, _update(columns), written)
            if dirty:
                _write(connection, _indexed_update(), [rows[device_id] for device_id in dirty])
            if history:
                session.execute(insert(_STATE_CHANGES), history)
            if events:
                session.execute(insert(_EVENTS), events)
        return applied

    @staticmethod
    def _set_state(
        row: dict[str, Any], state: str, reason: str, at: datetime, history: list[dict[str, Any]]
    ) -> None:
        if row["state"] == state and row["state_reason"] == reason:
            return
        if row["state"] != state:
            history.append({"device_id": row["id"], "at": at, "state": state, "reason": reason})
        row["state"], row["state_reason"] = state, reason

    def _status(
        self, row: dict[str, Any], payload: bytes, now: datetime, history: list[dict[str, Any]]
    ) -> bool:
        status = device_pb2.DeviceStatus.FromString(payload)
        since = timestamp_or_none(status, "since") or now
        held = row["status_since"]
        if held is not None and not supersedes(bool(row["online"]), held, since):
            return False
        online = status.state == device_pb2.DeviceStatus.STATE_ONLINE
        new_session = held is None or since != held
        if new_session:
            # Another session: its daemon may have restarted and counts its beats from 1 again.
            row["heartbeat_sequence"] = 0
        if new_session or online != row["online"]:
            # (The same status again, a retained one replayed to a restarted controller, keeps
            # the time it was first taken in: commands sent since are not sent again for it.)
            row["status_received_at"] = now
        row["online"] = online
        row["status_since"] = since
        if row["online"]:
            row["last_seen"] = now
            self._set_state(row, ONLINE, "已连接", since, history)
        else:
            reason = "设备正常关机" if status.graceful else "连接中断（遗嘱消息）"
            self._set_state(row, OFFLINE, reason, since, history)
        return True

    def _heartbeat(
        self, row: dict[str, Any], payload: bytes, now: datetime, history: list[dict[str, Any]]
    ) -> bool:
        beat = device_pb2.Heartbeat.FromString(payload)
        sequence = fit_int(beat.sequence)
        if sequence and sequence <= row["heartbeat_sequence"] and row["online"]:
            return False  # duplicate delivery (QoS 1 may deliver twice)
        row["heartbeat_sequence"] = sequence
        row["last_seen"] = now
        if not row["online"]:
            row["online"] = True
            row["status_since"] = row["status_received_at"] = now
        if row["state"] != ONLINE:
            self._set_state(row, ONLINE, "心跳恢复", now, history)
        depth = fit_int(beat.outbox_depth, 32)
        if depth > row["outbox_depth"]:
            row["backlog_rising"] += 1
        elif depth < row["outbox_depth"] or depth == 0:
            row["backlog_rising"] = 0
        row["outbox_depth"] = depth
        row["licence_days_left"] = beat.licence_days_left
        row["collection_allowed"] = beat.collection_allowed
        row["collection_refusal"] = fit_text(beat.collection_refusal, _REFUSAL_LENGTH)
        row["clock_skew_s"] = finite_or_none(beat.clock_skew_s) or 0.0
        version = fit_text(beat.software_version, _VERSION_LENGTH)
        row["software_version"] = version or row["software_version"]
        last_card = timestamp_or_none(beat, "last_card_read")
        row["last_heartbeat"] = {
            "uptime_s": finite_or_none(beat.uptime_s),
            "records_sealed": beat.records_sealed,
            "records_acked": beat.records_acked,
            "oldest_unsent_age_s": finite_or_none(beat.oldest_unsent_age_s),
            "disk_free_bytes": beat.disk_free_bytes,
            "reader": enum_name(device_pb2.ComponentState.Name, beat.reader),
            "camera": enum_name(device_pb2.ComponentState.Name, beat.camera),
            "sent_at": (timestamp_or_none(beat, "sent_at") or now).isoformat(),
            "last_card_read": last_card.isoformat() if last_card else "",
        }
        return True

    @staticmethod
    def _event(device_id: str, payload: bytes, now: datetime) -> dict[str, Any]:
        event = device_pb2.Event.FromString(payload)
        return {
            "device_id": device_id,
            "at": timestamp_or_none(event, "at") or now,
            "kind": enum_name(device_pb2.Event.Kind.Name, event.kind),
            "message": fit_text(event.message),
            "details": {fit_text(k): fit_text(v) for k, v in event.details.items()},
        }


__all__ = ["DeviceStateStore", "Message", "supersedes"]
