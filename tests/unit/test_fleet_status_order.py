"""Which of a device's statuses the store keeps, when the device's clock cannot be trusted and
its messages cross: a device's clock may run hours off (an RTC set wrong, the chaos suite's
libfaketime), its last will is stamped when it connected, not when it died, and replicas
sharing the telemetry apply a device's messages in whatever order their batches commit. The
device that died must read offline all the same, and an old retained status replayed after a
newer one must still change nothing. In virtual time on a migrated database."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.fleet.rules import OFFLINE, ONLINE
from tests.unit.test_fleet_health import KIOSK, T0, beat, device, move_to, setup, status

JUMP_S = 4.9 * 3600  # the chaos run's clock jump that left a dead device reading stale
WILL = "连接中断（遗嘱消息）"


@pytest.mark.parametrize("offset_s", [JUMP_S, -JUMP_S], ids=["ahead", "behind"])
@pytest.mark.parametrize("killed", ["after_the_jump", "during_the_jump"])
def test_a_device_killed_around_a_clock_jump_reads_offline(
    sessions: sessionmaker[Session], offset_s: float, killed: str
) -> None:
    """The chaos suite's clock jump: the daemon stops (goodbye), runs a while with its clock
    hours off (its online, beats and goodbye stamped so), stops, comes back on a true clock,
    then is killed -9. Its last will (stamped when that session connected) must end the
    session whatever the jumped statuses said: the device reads offline, not online turning
    stale."""
    clock, store, monitor = setup(sessions)
    off = timedelta(seconds=offset_s)

    def run_session(start_s: float, skew: timedelta) -> datetime:
        """One connection: its online, then two beats; returns the ``since`` it stamped."""
        move_to(clock, T0 + timedelta(seconds=start_s))
        since = clock.now() + skew
        store.apply([(KIOSK, "status", status(True, since))])
        for n in (1, 2):
            clock.advance_now(1)  # the first beat comes a moment after the status
            store.apply([(KIOSK, "telemetry", beat(n))])
        return since

    run_session(0, timedelta(0))
    move_to(clock, T0 + timedelta(seconds=60))
    store.apply([(KIOSK, "status", status(False, clock.now(), graceful=True))])
    connected = run_session(65, off)  # restarted under libfaketime
    if killed == "after_the_jump":
        move_to(clock, T0 + timedelta(seconds=125))
        store.apply([(KIOSK, "status", status(False, clock.now() + off, graceful=True))])
        connected = run_session(130, timedelta(0))  # back on a true clock
    assert device(sessions).state == ONLINE

    clock.advance_now(20)  # kill -9: the broker publishes the will the session connected with
    assert store.apply([(KIOSK, "status", status(False, connected))]) == 1
    row = device(sessions)
    assert (row.online, row.state, row.state_reason) == (False, OFFLINE, WILL)
    clock.advance_now(600)
    monitor.sweep()
    assert device(sessions).state == OFFLINE  # never "stale": it is known to be gone


def test_a_last_will_ends_a_session_held_online_by_a_status_stamped_hours_ahead(
    sessions: sessionmaker[Session],
) -> None:
    """An online stamped 4.9 hours in the future, then a last will stamped with a true clock:
    the will is news (it comes when the connection died), so the device reads offline."""
    clock, store, _ = setup(sessions)
    store.apply(
        [
            (KIOSK, "status", status(True, T0 + timedelta(seconds=JUMP_S))),
            (KIOSK, "telemetry", beat(1)),
        ]
    )
    clock.advance_now(30)
    assert store.apply([(KIOSK, "status", status(False, T0 + timedelta(seconds=10)))]) == 1
    assert (device(sessions).online, device(sessions).state) == (False, OFFLINE)


def test_the_last_will_ends_a_session_whose_first_beat_was_applied_before_its_online(
    sessions: sessionmaker[Session],
) -> None:
    """Replicas share the telemetry: one applies the session's first beat (which brings the
    device back on the centre's clock) before another applies the session's online. The will,
    stamped when the session connected, still ends it."""
    clock, store, _ = setup(sessions)
    store.apply([(KIOSK, "status", status(False, T0, graceful=True))])
    move_to(clock, T0 + timedelta(seconds=60))
    connected = clock.now()
    clock.advance_now(1)
    store.apply([(KIOSK, "telemetry", beat(1))])  # replica B, first
    store.apply([(KIOSK, "status", status(True, connected))])  # replica A, after
    clock.advance_now(30)
    assert store.apply([(KIOSK, "status", status(False, connected))]) == 1
    assert (device(sessions).online, device(sessions).state_reason) == (False, WILL)


def test_an_online_applied_after_its_own_last_will_changes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """A session's online that one replica applies after another applied that session's will
    (both name the same connection) is late, not news: the device stays offline."""
    clock, store, _ = setup(sessions)
    store.apply([(KIOSK, "status", status(False, T0, graceful=True))])
    move_to(clock, T0 + timedelta(seconds=60))
    connected = clock.now()
    clock.advance_now(5)
    store.apply([(KIOSK, "status", status(False, connected))])  # the will, first
    assert store.apply([(KIOSK, "status", status(True, connected))]) == 0  # its online, late
    assert (device(sessions).online, device(sessions).state) == (False, OFFLINE)


def test_an_old_retained_online_replayed_after_a_newer_offline_changes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """A broker restarted from an old persistence file replays the retained online of a session
    long gone to a controller that resubscribes: the dead device stays offline."""
    clock, store, _ = setup(sessions)
    store.apply([(KIOSK, "status", status(True, T0)), (KIOSK, "telemetry", beat(1))])
    move_to(clock, T0 + timedelta(minutes=10))
    later = clock.now()
    store.apply([(KIOSK, "status", status(True, later)), (KIOSK, "telemetry", beat(1))])
    clock.advance_now(60)
    store.apply([(KIOSK, "status", status(False, later))])
    clock.advance_now(60)
    assert store.apply([(KIOSK, "status", status(True, T0))]) == 0
    assert (device(sessions).online, device(sessions).state_reason) == (False, WILL)


def test_a_restarted_daemon_whose_clock_went_back_is_heard(
    sessions: sessionmaker[Session],
) -> None:
    """A daemon whose last will was lost (its broker node died with it) restarts with its clock
    set back: its new session's online is stamped before the old one's, and it counts its beats
    from 1 again. Its beats are news, not duplicates of the old session's."""
    clock, store, monitor = setup(sessions)
    store.apply(
        [
            (KIOSK, "status", status(True, T0)),
            *((KIOSK, "telemetry", beat(n)) for n in range(1, 31)),
        ]
    )
    move_to(clock, T0 + timedelta(minutes=30))
    store.apply([(KIOSK, "status", status(True, clock.now() - timedelta(seconds=JUMP_S)))])
    for n in range(1, 4):
        clock.advance_now(60)
        assert store.apply([(KIOSK, "telemetry", beat(n))]) == 1
    row = device(sessions)
    assert (row.heartbeat_sequence, row.last_seen) == (3, clock.now())
    clock.advance_now(30)
    monitor.sweep()
    assert device(sessions).state == ONLINE
