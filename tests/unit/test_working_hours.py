"""The campaign's working hours per region: the window rule (local time, wrapping midnight,
the longest prefix), the ``muster controller rollout hours`` command with its bad input refused,
and the offer that waits inside working hours unless the rollout was forced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.cli.service import controller
from controller.db import make_engine, migrate, session_factory
from controller.db.models import UpdateWindow
from controller.devices.pki_store import ControllerPki
from controller.releases.rollouts import create_rollout, offer_for
from controller.releases.update_windows import set_working_hours, waits_for_working_hours
from controller.releases.working_hours import (
    Window,
    inside_working_hours,
    parse_window,
    window_for,
)
from muster.releases import ReleaseError
from tests.unit.test_rollouts import _world


def at_cst(hour: int, minute: int = 0) -> datetime:
    """An instant at this local (UTC+8) time, on an arbitrary day: the rule reads only the hour."""
    return datetime(2030, 6, 1, hour, minute, tzinfo=UTC) - timedelta(hours=8)


@pytest.mark.parametrize(
    ("window", "hour", "minute", "inside"),
    [
        ("08:00-18:00", 7, 59, False),
        ("08:00-18:00", 8, 0, True),
        ("08:00-18:00", 17, 59, True),
        ("08:00-18:00", 18, 0, False),
        ("22:00-06:00", 23, 0, True),  # wraps midnight
        ("22:00-06:00", 5, 59, True),
        ("22:00-06:00", 12, 0, False),
        ("00:00-24:00", 3, 0, True),
    ],
)
def test_the_window_is_local_time(window: str, hour: int, minute: int, inside: bool) -> None:
    assert inside_working_hours(parse_window("37", window), at_cst(hour, minute)) is inside


def test_a_region_with_its_own_offset_and_the_longest_prefix() -> None:
    west = parse_window("65", "10:00-20:00", utc_offset_hours=6)
    # 09:30 in Beijing is 07:30 at UTC+6: before its window.
    assert not inside_working_hours(west, at_cst(9, 30))
    assert inside_working_hours(west, at_cst(12, 30))
    nation, county = parse_window("", "08:00-18:00"), parse_window("370902", "09:00-12:00")
    assert window_for([nation, county], "370902001000") == county
    assert window_for([nation, county], "370903001000") == nation
    assert window_for([county], "110101001000") is None
    assert not inside_working_hours(None, at_cst(10))


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("8-18", 8),
        ("08:00-08:00", 8),
        ("25:00-26:00", 8),
        ("08:60-18:00", 8),
        ("08:00-24:30", 8),
        ("08:00 - 18:00 ; rm -rf /", 8),
        ("０８:００-１８:００", 8),
        ("", 8),
        ("08:00-18:00", 15),
        ("08:00-18:00", 5.1),
    ],
)
def test_bad_windows_are_refused_with_their_reason(text: str, offset: float) -> None:
    with pytest.raises(ReleaseError) as caught:
        parse_window("37", text, offset)
    assert caught.value.reason == "bad_window" and (
        "HH:MM" in str(caught.value) or "不对" in str(caught.value) or "相同" in str(caught.value)
    )


def test_inside_working_hours_the_offer_waits_unless_forced(
    tmp_path: Path, pki: ControllerPki, sessions: sessionmaker[Session]
) -> None:
    ids = _world(tmp_path, pki, sessions, 2)
    inside, outside = ids[0], ids[-1]  # 370902 and 370903
    with sessions.begin() as session:
        set_working_hours(session, parse_window("370902", "08:00-18:00"), "370902")
        normal = create_rollout(
            session,
            version="0.2.0",
            region_prefix="",
            profiles=[],
            waves=[100],
            soak_s=0,
            health_window_s=900,
            failure_threshold=0.5,
            now=at_cst(7),
        )
    noon, night = at_cst(12), at_cst(20)
    with sessions() as session:
        assert waits_for_working_hours(session, normal, inside, noon) == Window("370902", 480, 1080)
        assert waits_for_working_hours(session, normal, inside, night) is None
        assert waits_for_working_hours(session, normal, outside, noon) is None
        assert offer_for(session, inside, noon) is not None  # the wave has it; the hour waits
        normal.ignore_working_hours = True
        assert waits_for_working_hours(session, normal, inside, noon) is None


def test_the_hours_command_and_its_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    data.mkdir()
    migrate(f"sqlite:///{(data / 'controller.db').resolve()}")

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(controller, [*args, "--data-dir", str(data)])
        return result.exit_code, result.output

    assert run("rollout", "hours", "3709", "08:00-18:00") == (
        0,
        "地区 3709 的工作时间为 08:00-18:00（UTC+8），其间不更新\n",
    )
    for args, words in [
        (("rollout", "hours", "3709", "8点到18点"), "HH:MM"),
        (("rollout", "hours", "37x9", "08:00-18:00"), ""),
        (("rollout", "hours", "3709"), "--clear"),
        (("rollout", "hours", "3709", "08:00-18:00", "--clear"), "--clear"),
        (("rollout", "hours", "3709", "08:00-18:00", "--utc-offset", "99"), "时区"),
        (("rollout", "hours", "110101", "--clear"), "没有设置"),
    ]:
        code, output = run(*args)
        assert code != 0 and words in output, (args, output)
    engine = make_engine(f"sqlite:///{(data / 'controller.db').resolve()}")
    with session_factory(engine)() as session:
        rows = [
            (w.region_prefix, w.start_minute, w.end_minute)
            for w in session.scalars(select(UpdateWindow))
        ]
    engine.dispose()
    assert rows == [("3709", 480, 1080)]
    assert run("rollout", "hours", "3709", "--clear")[0] == 0


def test_the_retry_command_refuses_what_it_cannot_retry(tmp_path: Path) -> None:
    data = tmp_path / "ctl"
    data.mkdir()
    migrate(f"sqlite:///{(data / 'controller.db').resolve()}")
    for args, words in [
        (("rollout", "retry", "7", "370902001000-ABCDEF"), "没有发布计划 #7"),
        (("rollout", "retry", "x", "370902001000-ABCDEF"), "x"),
        (("rollout", "retry", "7"), "DEVICE_ID"),
    ]:
        result = CliRunner().invoke(controller, [*args, "--data-dir", str(data)])
        assert result.exit_code != 0 and words in result.output, (args, result.output)
