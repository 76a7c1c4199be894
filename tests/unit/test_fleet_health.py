"""Device state (online / stale / offline, with the reason and its history) and alerts, raised
and resolved automatically, in virtual time on a migrated database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Alert, Device, DeviceEvent, DeviceStateChange, FleetSample
from controller.demo.simulated_fleet import register_simulated
from controller.fleet.monitor import FleetMonitor
from controller.fleet.rules import DeviceSnapshot, alerts, classify
from controller.fleet.telemetry_consumer import DeviceStateStore
from muster.clock import VirtualClock
from muster.fleet_layout import simulated_device
from muster.v1 import device_pb2

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
KIOSK = simulated_device(0).device_id  # fixed-kiosk profile: 60 s heartbeat, alert after 900 s


def move_to(clock: VirtualClock, moment: datetime) -> None:
    clock.advance_now((moment - clock.now()).total_seconds())


def status(online: bool, since: datetime, *, graceful: bool = False) -> bytes:
    message = device_pb2.DeviceStatus(
        device_id=KIOSK,
        state=device_pb2.DeviceStatus.STATE_ONLINE
        if online
        else device_pb2.DeviceStatus.STATE_OFFLINE,
        graceful=graceful,
    )
    message.since.FromDatetime(since)
    return message.SerializeToString()


def beat(sequence: int, **fields: object) -> bytes:
    values: dict[str, object] = {"licence_days_left": 300, "collection_allowed": True} | fields
    return device_pb2.Heartbeat(
        device_id=KIOSK,
        sequence=sequence,
        **values,  # type: ignore[arg-type]
    ).SerializeToString()


def open_alerts(sessions: sessionmaker[Session]) -> set[str]:
    with sessions() as session:
        return set(
            session.scalars(
                select(Alert.kind).where(Alert.device_id == KIOSK, Alert.resolved_at.is_(None))
            )
        )


def device(sessions: sessionmaker[Session]) -> Device:
    with sessions() as session:
        found = session.get(Device, KIOSK)
        assert found is not None
        return found


def setup(sessions: sessionmaker[Session]) -> tuple[VirtualClock, DeviceStateStore, FleetMonitor]:
    register_simulated(sessions, 1, now=T0)
    clock = VirtualClock(T0)
    return clock, DeviceStateStore(sessions, clock), FleetMonitor(sessions, clock=clock)


def test_states_follow_status_heartbeats_and_silence(sessions: sessionmaker[Session]) -> None:
    """Online on status and heartbeats; stale after 3 silent intervals though the retained status
    still says online; online again on the next heartbeat; offline on the last will, each with
    its reason, and every transition kept in the history."""
    clock, store, monitor = setup(sessions)
    store.apply([(KIOSK, "status", status(True, T0)), (KIOSK, "telemetry", beat(1))])
    assert device(sessions).state == "online"

    move_to(clock, T0 + timedelta(seconds=170))
    monitor.sweep()
    assert device(sessions).state == "online"  # under 3 x 60 s
    move_to(clock, T0 + timedelta(seconds=190))
    monitor.sweep()
    assert device(sessions).state == "stale"
    assert "没有心跳" in device(sessions).state_reason

    store.apply([(KIOSK, "telemetry", beat(2))])
    assert (device(sessions).state, device(sessions).state_reason) == ("online", "心跳恢复")

    clock.advance_now(5)
    store.apply([(KIOSK, "status", status(False, clock.now()))])
    assert (device(sessions).state, device(sessions).state_reason) == (
        "offline",
        "连接中断（遗嘱消息）",
    )
    with sessions() as session:
        history = [
            h.state
            for h in session.scalars(select(DeviceStateChange).order_by(DeviceStateChange.id))
        ]
    assert history == ["online", "stale", "online", "offline"]


def test_offline_alert_after_the_profiles_allowance_and_resolved_on_return(
    sessions: sessionmaker[Session],
) -> None:
    """The offline alert waits for the profile's offline_alert_after_s (900 s for a kiosk), stays
    open while the device is away, and resolves by itself when it is back."""
    clock, store, monitor = setup(sessions)
    store.apply([(KIOSK, "status", status(True, T0)), (KIOSK, "telemetry", beat(1))])
    store.apply([(KIOSK, "status", status(False, T0 + timedelta(seconds=10), graceful=True))])
    move_to(clock, T0 + timedelta(seconds=800))
    monitor.sweep()
    assert open_alerts(sessions) == set()
    move_to(clock, T0 + timedelta(seconds=1000))
    monitor.sweep()
    monitor.sweep()  # a second pass (or a second controller) raises nothing new
    assert open_alerts(sessions) == {"offline"}
    with sessions() as session:
        assert len(list(session.scalars(select(Alert)))) == 1

    store.apply([(KIOSK, "status", status(True, clock.now())), (KIOSK, "telemetry", beat(2))])
    monitor.sweep()
    assert open_alerts(sessions) == set()
    with sessions() as session:
        alert = session.scalars(select(Alert)).one()
    assert alert.resolved_at == clock.now() and alert.open_key is None


def test_the_offline_alert_keeps_the_centre_s_time_when_the_device_s_clock_runs_ahead(
    sessions: sessionmaker[Session],
) -> None:
    """A device whose clock runs 5 h ahead stamps its goodbye 5 h in the future. The offline
    alert still comes after the profile's 900 s on the centre's clock, not 5 h later."""
    clock, store, monitor = setup(sessions)
    ahead = timedelta(hours=5)
    store.apply([(KIOSK, "status", status(True, T0 + ahead)), (KIOSK, "telemetry", beat(1))])
    move_to(clock, T0 + timedelta(seconds=10))
    store.apply([(KIOSK, "status", status(False, clock.now() + ahead, graceful=True))])
    move_to(clock, T0 + timedelta(seconds=800))
    monitor.sweep()
    assert open_alerts(sessions) == set()
    move_to(clock, T0 + timedelta(seconds=1000))
    monitor.sweep()
    assert open_alerts(sessions) == {"offline"}
    assert device(sessions).status_received_at == T0 + timedelta(seconds=10)


def test_a_device_gone_for_hours_before_the_centre_heard_is_alerted_at_once(
    sessions: sessionmaker[Session],
) -> None:
    """A goodbye the device stamped two hours ago, taken in only now (the broker kept it retained
    for a controller that was not running yet), counts from the goodbye: the alert is raised at
    the first sweep, not 900 s after the centre heard. A clock skew the device measured is taken
    off its stamp first."""
    clock, store, monitor = setup(sessions)
    store.apply([(KIOSK, "telemetry", beat(1, clock_skew_s=240.0))])  # its clock 4 min ahead
    move_to(clock, T0 + timedelta(hours=2))
    gone_at = T0 + timedelta(seconds=30)
    store.apply([(KIOSK, "status", status(False, gone_at + timedelta(minutes=4), graceful=True))])
    monitor.sweep()
    assert open_alerts(sessions) == {"offline"}
    with sessions() as session:
        message = session.scalars(select(Alert.message).where(Alert.device_id == KIOSK)).one()
    assert message.startswith("离线已 120 分钟"), message  # 116 without the skew taken off


def test_backlog_licence_skew_and_reader_fault_alerts(sessions: sessionmaker[Session]) -> None:
    """Each rule raises its alert while it holds and resolves when it no longer does: backlog
    growing over 5 heartbeats, licence under 30 days, clock skew over 300 s, 3 reader faults in
    an hour."""
    clock, store, monitor = setup(sessions)
    store.apply([(KIOSK, "status", status(True, T0))])
    for n in range(1, 7):
        store.apply([(KIOSK, "telemetry", beat(n, outbox_depth=n * 10))])
    store.apply(
        [(KIOSK, "telemetry", beat(7, outbox_depth=80, licence_days_left=12, clock_skew_s=-420.0))]
    )
    for minute in (1, 2, 3):
        event = device_pb2.Event(device_id=KIOSK, kind=device_pb2.Event.KIND_READER_FAULT)
        event.at.FromDatetime(T0 + timedelta(minutes=minute))
        store.apply([(KIOSK, "event", event.SerializeToString())])
    move_to(clock, T0 + timedelta(minutes=4))
    monitor.sweep()
    assert open_alerts(sessions) == {"backlog", "licence", "clock_skew", "reader_faults"}

    store.apply(
        [(KIOSK, "telemetry", beat(8, outbox_depth=0, clock_skew_s=0.5, licence_days_left=12))]
    )
    move_to(clock, T0 + timedelta(minutes=4, seconds=30))
    monitor.sweep()
    assert open_alerts(sessions) == {"licence", "reader_faults"}
    move_to(clock, T0 + timedelta(minutes=70))  # the faults age out of the hour
    store.apply([(KIOSK, "telemetry", beat(9, licence_days_left=200))])
    monitor.sweep()
    assert open_alerts(sessions) == set()
    with sessions() as session:
        assert session.scalars(select(FleetSample)).first() is not None
        assert len(list(session.scalars(select(DeviceEvent)))) == 3


def test_rules_are_pure_and_say_why() -> None:
    """The rules decide from a snapshot alone and their messages say what is wrong."""
    snapshot = DeviceSnapshot(
        device_id="d",
        online=True,
        state="online",
        state_reason="",
        status_since=T0,
        last_seen=T0,
        enrolled_at=T0,
        revoked=False,
        heartbeat_interval_s=60,
        offline_alert_after_s=900,
        licence_days_left=3,
        collection_allowed=True,
        clock_skew_s=0,
        backlog_rising=0,
        outbox_depth=0,
        reader_faults_last_hour=0,
    )
    later = T0 + timedelta(hours=2)
    verdict = classify(snapshot, later)
    assert verdict.state == "stale" and "2.0 小时" in verdict.reason
    found = alerts(snapshot, verdict.state, later)
    assert set(found) == {"offline", "licence"}
    assert "3 天" in found["licence"]
