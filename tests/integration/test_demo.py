"""``muster demo`` as a user runs it: one real run (controller, broker, card and camera
simulators, device daemons as processes), watched through its progress lines, with one device
killed with SIGKILL halfway, as a user would to see an alert.

- the progress line never shows more records acknowledged than sealed;
- the devices collect the people of their own township's slice, so progress rises toward
  100 % and no township has more records than people;
- the killed device shows offline with an alert, in the status line and the admin API, while
  the demo goes on and ends normally.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from controller.db import open_database
from controller.db.models import Alert, Device, PersonRow, Record
from controller.records.progress import progress
from controller.settings import ControllerSettings
from muster.clock import SystemClock
from tests.fixtures.components import free_port

STATUS = re.compile(
    r"\[\s*(?P<t>\d+)s\] .*enrolled (?P<enrolled>\d+) · online (?P<online>\d+) · "
    r"offline (?P<offline>\d+) · 告警 alerts (?P<alerts>\d+) · sealed (?P<sealed>\d+) · "
    r"acked (?P<acked>\d+) · outbox (?P<outbox>\d+)"
)
DEVICE = re.compile(r"设备 (?P<name>device-\d+): 乡镇 (?P<township>\d{12}).* pid (?P<pid>\d+)")
KILLED = "device-2"
DURATION_S = 110  # the offline alert needs the profile's 60 s allowance plus a monitor sweep


@dataclass
class DemoRun:
    data_dir: Path
    stdout: list[str] = field(default_factory=list)
    samples: list[dict[str, int]] = field(default_factory=list)
    samples_after_kill: list[dict[str, int]] = field(default_factory=list)
    devices: dict[str, tuple[str, int]] = field(default_factory=dict)
    admin_alerts: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    stderr: list[str] = field(default_factory=list)


def _admin_alerts(run: DemoRun, admin_url: str) -> list[dict[str, Any]]:
    token = subprocess.run(
        [
            *(sys.executable, "-m", "muster", "controller", "admin", "token"),
            *("--username", "demo", "--data-dir", str(run.data_dir / "controller")),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    request = urllib.request.Request(
        admin_url.rstrip("/") + "/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        alerts: list[dict[str, Any]] = json.load(response)
    return alerts


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    run = DemoRun(tmp_path_factory.mktemp("demo") / "state")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "muster", "demo", "--devices", "2"),
            *("--duration", str(DURATION_S), "--status-every", "1", "--seed", "7"),
            *("--data-dir", str(run.data_dir), "--admin-port", str(free_port("127.0.0.1"))),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None and process.stderr is not None
    out_lines, err_lines = process.stdout, process.stderr

    def read_stdout() -> None:
        for line in out_lines:
            run.stdout.append(line.rstrip("\n"))

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    killed = False
    admin_url = ""
    try:
        for line in err_lines:
            run.stderr.append(line.rstrip("\n"))
            for out in list(run.stdout):
                if m := DEVICE.search(out):
                    run.devices[m["name"]] = (m["township"], int(m["pid"]))
                if out.startswith("管理界面 admin UI: "):
                    admin_url = out.split(": ", 1)[1]
            m = STATUS.search(line)
            if m is None:
                continue
            sample = {k: int(v) for k, v in m.groupdict().items()}
            run.samples.append(sample)
            if killed:
                run.samples_after_kill.append(sample)
                if sample["alerts"] >= 1 and not run.admin_alerts:
                    run.admin_alerts = _admin_alerts(run, admin_url)
            elif sample["acked"] >= 10 and KILLED in run.devices:
                # What a user does to see an alert: kill one device's process outright.
                os.kill(run.devices[KILLED][1], signal.SIGKILL)
                killed = True
        run.returncode = process.wait(timeout=90)
        reader.join(timeout=10)
        run.summary = json.loads(run.stdout[-1])
        yield run
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_demo_ends_normally_with_one_device_killed(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, "\n".join(demo_run.stderr[-20:])
    assert demo_run.summary["devices_enrolled"] == 2
    assert demo_run.summary["devices_exited"] == [KILLED]
    assert demo_run.summary["records_acked"] > 10


def test_acked_never_exceeds_sealed(demo_run: DemoRun) -> None:
    assert len(demo_run.samples) > 30
    for sample in demo_run.samples:
        assert sample["acked"] <= sample["sealed"], sample
    assert demo_run.summary["records_acked"] <= demo_run.summary["records_sealed"]
    # The counters rise as the visitors come; nothing is counted before it happens.
    acked = [s["acked"] for s in demo_run.samples]
    assert acked == sorted(acked)
    assert acked[-1] > 0


def test_killed_device_shows_offline_with_an_alert(demo_run: DemoRun) -> None:
    after = demo_run.samples_after_kill
    assert after, "no progress line after the kill"
    assert any(s["offline"] == 1 and s["online"] == 1 for s in after), after[-3:]
    assert any(s["alerts"] >= 1 for s in after), after[-3:]
    assert any(f"设备 {KILLED} 已退出" in line for line in demo_run.stderr)
    # The admin API, as the admin UI reads it, names the killed device.
    township = demo_run.devices[KILLED][0]
    assert [a["kind"] for a in demo_run.admin_alerts if a["township_code"] == township] == [
        "offline"
    ]
    # The other device kept collecting after the kill.
    assert after[-1]["acked"] > after[0]["acked"]


def test_devices_collect_their_own_slice(demo_run: DemoRun) -> None:
    settings = ControllerSettings(data_dir=demo_run.data_dir / "controller")
    with open_database(settings) as sessions, sessions() as session:
        report = progress(session, "", SystemClock().now())
        per_township = dict(
            session.execute(
                select(Record.township_code, func.count()).group_by(Record.township_code)
            ).all()
        )
        people = dict(
            session.execute(
                select(PersonRow.township_code, func.count()).group_by(PersonRow.township_code)
            ).all()
        )
        outside = session.scalar(
            select(func.count())
            .select_from(Record)
            .where(
                ~select(PersonRow.id_number)
                .where(
                    PersonRow.township_code == Record.township_code,
                    PersonRow.id_number == Record.id_number,
                )
                .exists()
            )
        )
        duplicates = session.execute(
            select(Record.id_number).group_by(Record.id_number).having(func.count() > 1)
        ).all()
        devices = {d.township_code: d.id for d in session.scalars(select(Device))}
        alerts = session.scalars(
            select(Alert.kind).where(
                Alert.device_id == devices[demo_run.devices[KILLED][0]],
                Alert.resolved_at.is_(None),
            )
        ).all()
    assert outside == 0, "records of people outside the device's slice"
    assert duplicates == []
    assert set(per_township) == {township for township, _ in demo_run.devices.values()}
    for township, records in per_township.items():
        assert 0 < records <= people[township]
    totals = report.totals
    assert totals.collected == sum(per_township.values())
    # Every record is someone the centre was missing: collected + missing = the slice.
    assert totals.collected + totals.missing == totals.slice
    assert 0.0 < report.totals.percent < 100.0
    assert list(alerts) == ["offline"]
