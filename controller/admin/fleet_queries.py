"""What the fleet pages and API show, read in set-based queries that stay fast at 100,000
devices: counts grouped by region prefix and state, one page of devices at a time, and series
bucketed by hour in the database."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from controller.db.models import (
    Alert,
    Command,
    Device,
    DeviceEvent,
    DeviceStateChange,
    FleetSample,
    Record,
)
from controller.fleet.rules import STATES
from controller.records.region_tree import region_names
from muster.clock import CAMPAIGN_TZ
from muster.region_names import region_label, township_label
from muster.regions import COUNTY, TOWNSHIP, child_length


@dataclass
class RegionRow:
    code: str
    name: str
    devices: int = 0
    online: int = 0
    stale: int = 0
    offline: int = 0
    alerting: int = 0


@dataclass
class Totals:
    devices: int = 0
    online: int = 0
    stale: int = 0
    offline: int = 0
    alerting: int = 0
    records: int = 0
    backlog: int = 0


def _in_region(prefix: str) -> Any:
    return Device.township_code.startswith(prefix) if prefix else True


def totals(session: Session, prefix: str = "") -> Totals:
    out = Totals()
    for state, count, backlog in session.execute(
        select(Device.state, func.count(), func.coalesce(func.sum(Device.outbox_depth), 0))
        .where(_in_region(prefix))
        .group_by(Device.state)
    ):
        out.devices += count
        out.backlog += int(backlog)
        if state in STATES:
            setattr(out, state, getattr(out, state) + count)
    out.alerting = (
        session.scalar(
            select(func.count(func.distinct(Alert.device_id)))
            .join(Device, Device.id == Alert.device_id)
            .where(Alert.resolved_at.is_(None), _in_region(prefix))
        )
        or 0
    )
    records = select(func.count()).select_from(Record)
    if prefix:
        records = records.where(Record.township_code.startswith(prefix))
    out.records = session.scalar(records) or 0
    return out


def regions(session: Session, prefix: str) -> list[RegionRow]:
    """One row per child region of ``prefix`` that has devices, with counts per state."""
    length = child_length(prefix)
    if length is None:
        return []
    code = func.substr(Device.township_code, 1, length)
    rows: dict[str, RegionRow] = {}
    for child, state, count in session.execute(
        select(code, Device.state, func.count())
        .where(_in_region(prefix))
        .group_by(code, Device.state)
    ):
        row = rows.setdefault(child, RegionRow(child, region_label(child)))
        row.devices += count
        if state in STATES:
            setattr(row, state, getattr(row, state) + count)
    for child, count in session.execute(
        select(code, func.count(func.distinct(Alert.device_id)))
        .join(Device, Device.id == Alert.device_id)
        .where(Alert.resolved_at.is_(None), _in_region(prefix))
        .group_by(code)
    ):
        if child in rows:
            rows[child].alerting = count
    names = region_names(session, list(rows))
    for child, row in rows.items():
        # The tree's name; a township it lacks reads "泰山区 001 乡镇", never a bare code.
        known = names.get(child, "")
        if len(child) == TOWNSHIP.length and (not known or known == township_label(child)):
            known = f"{region_label(child[: COUNTY.length])} {region_label(child)}"
        row.name = known or region_label(child)
    return [rows[k] for k in sorted(rows)]


@dataclass
class DeviceFilter:
    region: str = ""
    state: str = ""  # "", online, stale, offline
    alerting: bool = False
    query: str = ""  # part of a device id or a township code
    page: int = 1
    per_page: int = 50


@dataclass
class DevicePage:
    devices: list[Device]
    total: int
    open_alerts: dict[str, list[str]] = field(default_factory=dict)


def _filtered(base: Select[Any], f: DeviceFilter) -> Select[Any]:
    query = base.where(_in_region(f.region))
    if f.state:
        query = query.where(Device.state == f.state)
    if f.query:
        needle = f.query.strip()
        query = query.where(
            or_(Device.id.contains(needle), Device.township_code.startswith(needle))
        )
    if f.alerting:
        query = query.where(
            Device.id.in_(select(Alert.device_id).where(Alert.resolved_at.is_(None)))
        )
    return query


def devices(session: Session, f: DeviceFilter) -> DevicePage:
    total = session.scalar(_filtered(select(func.count()).select_from(Device), f)) or 0
    page = list(
        session.scalars(
            _filtered(select(Device), f)
            .order_by(Device.township_code, Device.id)
            .offset((max(f.page, 1) - 1) * f.per_page)
            .limit(f.per_page)
        )
    )
    ids = [d.id for d in page]
    open_alerts: dict[str, list[str]] = {}
    if ids:
        for device_id, kind in session.execute(
            select(Alert.device_id, Alert.kind).where(
                Alert.resolved_at.is_(None), Alert.device_id.in_(ids)
            )
        ):
            open_alerts.setdefault(device_id, []).append(kind)
    return DevicePage(page, total, open_alerts)


def _hour(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("hour", column), "YYYY-MM-DD HH24:00")
    return func.strftime("%Y-%m-%d %H:00", column)


def records_per_hour(
    session: Session, now: datetime, hours: int = 24, *, prefix: str = "", device_id: str = ""
) -> list[tuple[str, int]]:
    """(hour label, records received) for each of the last ``hours`` hours, oldest first."""
    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    bucket = _hour(session, Record.received_at)
    query = select(bucket, func.count()).where(Record.received_at >= start)
    if prefix:
        query = query.where(Record.township_code.startswith(prefix))
    if device_id:
        query = query.where(Record.device_id == device_id)
    counts: dict[str, int] = {key: n for key, n in session.execute(query.group_by(bucket))}
    # Counted by the UTC hour the database sees; labelled by the Beijing hour a person reads.
    hours_utc = [start + timedelta(hours=i) for i in range(hours)]
    return [
        (
            h.astimezone(CAMPAIGN_TZ).strftime("%m-%d %H:00"),
            int(counts.get(h.astimezone(UTC).strftime("%Y-%m-%d %H:00"), 0)),
        )
        for h in hours_utc
    ]


def fleet_series(session: Session, now: datetime, hours: int = 24) -> list[FleetSample]:
    return list(
        session.scalars(
            select(FleetSample)
            .where(FleetSample.at >= now - timedelta(hours=hours))
            .order_by(FleetSample.at)
        )
    )


@dataclass
class DeviceDetail:
    device: Device
    history: list[DeviceStateChange]
    events: list[DeviceEvent]
    commands: list[Command]
    alerts: list[Alert]
    records_per_hour: list[tuple[str, int]]


def device_detail(session: Session, device_id: str, now: datetime) -> DeviceDetail | None:
    device = session.get(Device, device_id)
    if device is None:
        return None

    def latest(model: Any, column: Any, limit: int = 50) -> list[Any]:
        return list(
            session.scalars(
                select(model)
                .where(model.device_id == device_id)
                .order_by(column.desc())
                .limit(limit)
            )
        )

    return DeviceDetail(
        device=device,
        history=latest(DeviceStateChange, DeviceStateChange.at),
        events=latest(DeviceEvent, DeviceEvent.at),
        commands=latest(Command, Command.issued_at),
        alerts=list(
            session.scalars(
                select(Alert)
                .where(
                    Alert.device_id == device_id,
                    or_(
                        Alert.resolved_at.is_(None),
                        and_(Alert.resolved_at >= now - timedelta(days=7)),
                    ),
                )
                .order_by(Alert.raised_at.desc())
            )
        ),
        records_per_hour=records_per_hour(session, now, device_id=device_id),
    )


def open_alerts(session: Session, prefix: str = "", limit: int = 200) -> list[tuple[Alert, str]]:
    """Open alerts, newest first, with each device's township."""
    return [
        (alert, township)
        for alert, township in session.execute(
            select(Alert, Device.township_code)
            .join(Device, Device.id == Alert.device_id)
            .where(Alert.resolved_at.is_(None), _in_region(prefix))
            .order_by(Alert.raised_at.desc())
            .limit(limit)
        )
    ]
