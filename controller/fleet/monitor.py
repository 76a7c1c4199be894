"""Keeps each device's state (online / stale / offline), its state history and its alerts in the
database, applying the rules of ``controller.fleet.rules``.

Transitions driven by messages (a status, a heartbeat) are recorded by the telemetry store
(``controller.fleet.telemetry_store``) as they arrive. What only the passing of time reveals (a device gone silent,
an offline period growing past what its profile allows) is found by :class:`FleetMonitor`, which
sweeps the whole fleet every few seconds in a handful of set-based queries, so 100,000 devices
cost well under a second. Several controller processes may sweep at once: writes are conditional
and an open alert is unique per device and kind.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Alert, Device, DeviceEvent, DeviceStateChange, FleetSample
from controller.fleet.rules import (
    ALERT_KINDS,
    BACKLOG_RISING_BEATS,
    CLOCK_SKEW_LIMIT_S,
    LICENCE_WARN_DAYS,
    ONLINE,
    STALE_AFTER_BEATS,
    DeviceSnapshot,
    alerts,
    classify,
)
from muster.clock import Clock
from muster.errors import ConfigError
from muster.profiles import UplinkProfile, load_profile

log = structlog.get_logger(__name__)

SAMPLE_EVERY = timedelta(minutes=1)


@functools.lru_cache(maxsize=64)
def uplink_of(profile_name: str) -> UplinkProfile:
    """A device's heartbeat interval and offline allowance come from its shipped profile."""
    try:
        return load_profile(profile_name).uplink
    except ConfigError:
        return UplinkProfile()


@dataclass
class SweepResult:
    devices: int  # looked at (the healthy majority is skipped)
    transitions: int
    raised: int
    resolved: int


def _insert_ignoring_conflicts(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        session.execute(pg_insert(Alert).on_conflict_do_nothing(), rows)
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        session.execute(sqlite_insert(Alert).on_conflict_do_nothing(), rows)
    else:
        session.execute(insert(Alert), rows)


class FleetMonitor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        interval_s: float = 10.0,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._interval = interval_s
        self._clock = clock
        self.last_sweep: SweepResult | None = None

    @staticmethod
    def _worth_a_look(session: Session, now: datetime) -> Any:
        """Devices a rule might hold for, or whose state time might change: everything but the
        healthy majority (online, heard from within 3 intervals, nothing out of bounds), so a
        sweep of 100,000 devices reads only the few thousand that matter."""
        silent = [
            and_(
                Device.profile == profile,
                or_(
                    Device.last_seen.is_(None),
                    Device.last_seen
                    < now
                    - timedelta(
                        seconds=uplink_of(profile).heartbeat_interval_s * STALE_AFTER_BEATS
                    ),
                ),
            )
            for profile in session.scalars(select(Device.profile).distinct())
        ]
        recent_faults = select(DeviceEvent.device_id).where(
            DeviceEvent.kind == "KIND_READER_FAULT", DeviceEvent.at >= now - timedelta(hours=1)
        )
        alerted = select(Alert.device_id).where(Alert.resolved_at.is_(None))
        return or_(
            Device.online.is_(False),
            Device.state != ONLINE,
            *silent,
            Device.licence_days_left < LICENCE_WARN_DAYS,
            Device.clock_skew_s > CLOCK_SKEW_LIMIT_S,
            Device.clock_skew_s < -CLOCK_SKEW_LIMIT_S,
            Device.backlog_rising >= BACKLOG_RISING_BEATS,
            Device.id.in_(alerted),
            Device.id.in_(recent_faults),
        )

    def _snapshots(self, session: Session, now: datetime) -> list[DeviceSnapshot]:
        faults = dict(
            session.execute(
                select(DeviceEvent.device_id, func.count())
                .where(
                    DeviceEvent.kind == "KIND_READER_FAULT",
                    DeviceEvent.at >= now - timedelta(hours=1),
                )
                .group_by(DeviceEvent.device_id)
            ).all()
        )
        rows = session.execute(
            select(
                Device.id,
                Device.profile,
                Device.online,
                Device.state,
                Device.state_reason,
                Device.status_since,
                Device.status_received_at,
                Device.last_seen,
                Device.enrolled_at,
                Device.revoked_at,
                Device.licence_days_left,
                Device.collection_allowed,
                Device.clock_skew_s,
                Device.backlog_rising,
                Device.outbox_depth,
            ).where(self._worth_a_look(session, now))
        )
        out = []
        for row in rows:
            uplink = uplink_of(row.profile)
            out.append(
                DeviceSnapshot(
                    device_id=row.id,
                    online=bool(row.online),
                    state=row.state,
                    state_reason=row.state_reason,
                    status_since=row.status_since,
                    status_received_at=row.status_received_at,
                    last_seen=row.last_seen,
                    enrolled_at=row.enrolled_at,
                    revoked=row.revoked_at is not None,
                    heartbeat_interval_s=uplink.heartbeat_interval_s,
                    offline_alert_after_s=uplink.offline_alert_after_s,
                    licence_days_left=row.licence_days_left,
                    collection_allowed=bool(row.collection_allowed),
                    clock_skew_s=row.clock_skew_s,
                    backlog_rising=row.backlog_rising,
                    outbox_depth=row.outbox_depth,
                    reader_faults_last_hour=int(faults.get(row.id, 0)),
                )
            )
        return out

    def sweep(self) -> SweepResult:
        """One pass over the fleet: state transitions only time reveals, alerts raised and
        resolved, and a fleet sample once a minute."""
        now = self._clock.now()
        with self._sessions.begin() as session:
            snapshots = self._snapshots(session, now)
            open_alerts: dict[tuple[str, str], int] = {
                (device_id, kind): alert_id
                for alert_id, device_id, kind in session.execute(
                    # Only the kinds these rules own: others (a rollout's) are resolved by theirs.
                    select(Alert.id, Alert.device_id, Alert.kind).where(
                        Alert.resolved_at.is_(None), Alert.kind.in_(ALERT_KINDS)
                    )
                )
            }
            changes: list[dict[str, Any]] = []
            history: list[dict[str, Any]] = []
            to_raise: list[dict[str, Any]] = []
            holding: set[tuple[str, str]] = set()
            for device in snapshots:
                verdict = classify(device, now)
                if verdict.state != device.state:
                    changes.append(
                        {"b_id": device.device_id, "b_old": device.state, "state": verdict.state}
                        | {"state_reason": verdict.reason}
                    )
                    history.append(
                        {
                            "device_id": device.device_id,
                            "at": now,
                            "state": verdict.state,
                            "reason": verdict.reason,
                        }
                    )
                for kind, message in alerts(device, verdict.state, now).items():
                    holding.add((device.device_id, kind))
                    if (device.device_id, kind) not in open_alerts:
                        to_raise.append(
                            {
                                "device_id": device.device_id,
                                "kind": kind,
                                "message": message[:300],
                                "raised_at": now,
                                "resolved_at": None,
                                "open_key": f"{device.device_id}:{kind}",
                            }
                        )
            to_resolve = [alert_id for key, alert_id in open_alerts.items() if key not in holding]
            if changes:
                # Core, not ORM: a conditional executemany, so a heartbeat that arrived since
                # the snapshot (state already changed) is not overwritten.
                devices = cast(Table, Device.__table__)
                session.execute(
                    update(devices)
                    .where(devices.c.id == bindparam("b_id"), devices.c.state == bindparam("b_old"))
                    .values(state=bindparam("state"), state_reason=bindparam("state_reason")),
                    changes,
                )
                session.execute(insert(DeviceStateChange), history)
            if to_raise:
                _insert_ignoring_conflicts(session, to_raise)
            for start in range(0, len(to_resolve), 500):
                session.execute(
                    update(Alert)
                    .where(Alert.id.in_(to_resolve[start : start + 500]))
                    .values(resolved_at=now, open_key=None)
                    .execution_options(synchronize_session=False)
                )
            counts = {"online": 0, "stale": 0, "offline": 0}
            backlog = total = 0
            for state, count, depth in session.execute(
                select(
                    Device.state, func.count(), func.coalesce(func.sum(Device.outbox_depth), 0)
                ).group_by(Device.state)
            ):
                counts[state] = counts.get(state, 0) + count
                total += count
                backlog += int(depth)
        self._sample(now, total, counts, len({d for d, _ in holding}), backlog)
        result = SweepResult(len(snapshots), len(changes), len(to_raise), len(to_resolve))
        self.last_sweep = result
        return result

    def _sample(
        self, now: datetime, devices: int, counts: dict[str, int], alerting: int, backlog: int
    ) -> None:
        at = now.replace(second=0, microsecond=0)
        try:
            with self._sessions.begin() as session:
                if session.get(FleetSample, at) is not None:
                    return
                session.add(
                    FleetSample(
                        at=at,
                        devices=devices,
                        online=counts["online"],
                        stale=counts["stale"],
                        offline=counts["offline"],
                        alerting=alerting,
                        backlog=backlog,
                    )
                )
        except IntegrityError:
            pass  # another controller process took this minute's sample

    async def run(self) -> None:
        """Sweep every ``interval_s`` of the clock. A failed sweep ends the run; the
        controller's supervisor restarts it after a backoff."""
        while True:
            result = await asyncio.to_thread(self.sweep)
            if result.transitions or result.raised or result.resolved:
                log.info(
                    "fleet swept",
                    devices=result.devices,
                    transitions=result.transitions,
                    alerts_raised=result.raised,
                    alerts_resolved=result.resolved,
                )
            await self._clock.sleep(self._interval)


__all__ = ["FleetMonitor", "SweepResult", "uplink_of"]
