"""``muster demo``: a controller, an in-process broker and a small fleet of simulated devices on
one machine, on embedded defaults. Everything enrols, reports and uploads through the real
paths (TLS, gRPC, MQTT, SQLite); the last line printed is a JSON summary.

Over 400 lines because it orchestrates one run (controller, broker, devices, status line, end
summary); each part it starts lives in its own room.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import func, select

from controller.app import Controller
from controller.db.models import Alert, Device, Record
from controller.demo.embedded_broker import EmbeddedBroker
from controller.devices.enrolment import create_enrollment_code
from controller.records.initial_import import Importer
from controller.settings import ControllerSettings
from muster.clock import Clock, SystemClock
from muster.dataset import synthetic_rows
from muster.initial_data import COLUMNS
from muster.logs import configure_logging

# Townships of Tai'an's Taishan district (370902), where the campaign's most detailed plan comes from.
DEMO_TOWNSHIPS = [f"370902{n:03d}000" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100, 101)]


MUSTER = (sys.executable, "-m", "muster")


def device_profile(reader_url: str, camera_file: Path) -> str:
    """The simulator profile with the simulated reader and camera plugged in."""
    return (
        "name: simulator\n"
        "model: muster simulated collection device\n"
        "kind: simulator\n"
        f"reader: {{kind: sam, port: '{reader_url}', baud: 115200}}\n"
        f"camera: {{kind: opencv, source: '{camera_file}'}}\n"
        "uplink: {heartbeat_interval_s: 5, upload_batch: 64, offline_alert_after_s: 60}\n"
        "outbox: {min_disk_free_bytes: 0}\n"
        "simulation: {records_per_minute: 0}\n"
    )


async def _run_quiet(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    _, err = await process.communicate()
    if process.returncode != 0:
        raise click.ClickException(
            f"{' '.join(command[2:])} failed: {err.decode(errors='replace')}"
        )


def demo_townships(devices: int) -> list[str]:
    """The township of each device: the demo's townships in turn, a township's devices sharing
    its people between them."""
    return [DEMO_TOWNSHIPS[i % len(DEMO_TOWNSHIPS)] for i in range(devices)]


def import_demo_people(
    controller: Controller, townships: list[str], per_township: int = 300, seed: int = 2018
) -> list[dict[str, str]]:
    """The centre's initial data for the devices' townships (S-04); returns the rows imported,
    which the devices then sync as their slices."""
    codes = sorted(set(townships))
    rows = list(
        synthetic_rows(
            per_township * len(codes), codes, random.Random(seed), controller.clock.today()
        )
    )
    report = Importer(controller.sessions, clock=controller.clock).import_rows(
        enumerate(rows, start=2)
    )
    rejected = {r.line for r in report.rejected}
    return [row for line, row in enumerate(rows, start=2) if line not in rejected]


def write_visitors(rows: list[dict[str, str]], townships: list[str], device: int, out: Path) -> int:
    """The people who come to ``device``'s collection point, in the import format: its own
    township's, split between the township's devices so that nobody is collected twice."""
    township = townships[device]
    sharing = [i for i, code in enumerate(townships) if code == township]
    share = sharing.index(device)
    people = [row for row in rows if row["township_code"] == township]
    mine = people[share :: len(sharing)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow([c.header for c in COLUMNS])
        for row in mine:
            writer.writerow([row[c.key] for c in COLUMNS])
    return len(mine)


def free_port(preferred: int = 0, host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        try:
            sock.bind((host, preferred))
        except OSError:
            sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class FleetNumbers:
    devices_enrolled: int
    devices_online: int
    records_sealed: int
    records_acked: int
    outbox_depth: int
    devices_offline: int = 0
    alerts_open: int = 0


def fleet_numbers(controller: Controller) -> FleetNumbers:
    """The fleet's counters in one statement, so from one snapshot of the database.

    A device's sealed count comes from its last heartbeat and lags; what the centre has
    already acknowledged from it was sealed there too, so sealed is at least that, and
    ``records_acked <= records_sealed`` holds at every moment."""
    acked = (
        select(func.count())
        .select_from(Record)
        .where(Record.device_id == Device.id)
        .correlate(Device)
        .scalar_subquery()
    )
    alerts = (
        select(func.count())
        .select_from(Alert)
        .where(Alert.device_id == Device.id, Alert.resolved_at.is_(None))
        .correlate(Device)
        .scalar_subquery()
    )
    with controller.sessions() as session:
        rows = session.execute(
            select(
                Device.last_heartbeat,
                Device.online,
                Device.state,
                Device.outbox_depth,
                acked,
                alerts,
            )
        ).all()
    numbers = FleetNumbers(0, 0, 0, 0, 0)
    for heartbeat, said_online, state, outbox, received, open_alerts in rows:
        # Its own status message (a goodbye or the broker's last will) says offline at once;
        # the monitor's sweep says stale when a device falls silent without either.
        online = bool(said_online) and state != "stale"
        numbers.devices_enrolled += 1
        numbers.devices_online += online
        numbers.devices_offline += not online
        numbers.records_acked += received
        numbers.records_sealed += max(int(heartbeat.get("records_sealed", 0)), received)
        numbers.outbox_depth += outbox
        numbers.alerts_open += open_alerts
    return numbers


def _status_line(n: FleetNumbers, elapsed: float) -> str:
    return (
        f"[{elapsed:5.0f}s] 设备 enrolled {n.devices_enrolled} · online {n.devices_online} · "
        f"offline {n.devices_offline} · 告警 alerts {n.alerts_open} · "
        f"sealed {n.records_sealed} · acked {n.records_acked} · outbox {n.outbox_depth}"
    )


def _demo_admin(controller: Controller) -> tuple[str, str]:
    """A national admin for the demo's UI, with a fresh password printed once."""
    import secrets

    from controller.accounts.admins import add_admin

    password = "demo-" + secrets.token_hex(4)
    with controller.sessions.begin() as session:
        add_admin(
            session,
            username="demo",
            role="ministry",
            region="",
            password=password,
            now=controller.clock.now(),
        )
    return "demo", password


async def run_demo(
    devices: int,
    duration: float | None,
    data_dir: Path,
    admin_port: int,
    *,
    clock: Clock,
    seed: int = 2018,
    status_every_s: float = 5.0,
) -> dict[str, Any]:
    host = "127.0.0.1"
    broker = EmbeddedBroker(host, free_port())
    await broker.start()
    settings = ControllerSettings(
        data_dir=data_dir / "controller",
        enrol_port=free_port(),
        data_port=free_port(),
        admin_port=free_port(admin_port),
        mqtt_url=broker.url,
    )
    controller = Controller.prepare(settings, clock)
    await controller.start()
    # The centre's initial data for the demo townships (S-04): devices sync it as their slice.
    townships = demo_townships(devices)
    people = await asyncio.to_thread(import_demo_people, controller, townships, seed=seed)
    print(f"初始数据 initial data: {len(people)} 人 people imported", flush=True)
    print(f"管理界面 admin UI: {controller.admin_url}", flush=True)
    login = await asyncio.to_thread(_demo_admin, controller)
    print(f"管理员 admin login: {login[0]} / {login[1]}", flush=True)
    print(f"数据目录 data: {data_dir}", flush=True)

    now = clock.now()
    edges: list[asyncio.subprocess.Process] = []
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Simulated hardware on real transports: one SAM reader simulator per device, the people of
    # the device's own township (its slice) coming to it one by one, and one recorded camera
    # they all watch.
    camera_file = data_dir / "camera.avi"
    await _run_quiet(
        sys.executable, "-m", "muster", "sim", "camera", "--out", str(camera_file), "--seconds", "4"
    )
    simulators: list[asyncio.subprocess.Process] = []
    visitors_count: list[int] = []
    for i in range(devices):
        township = townships[i]
        state_dir = data_dir / f"device-{i + 1}"
        visitors = state_dir / "visitors.csv"
        visitors_count.append(
            await asyncio.to_thread(write_visitors, people, townships, i, visitors)
        )
        reader_port = free_port()
        with (logs / f"reader-{i + 1}.log").open("wb") as log_file:
            simulators.append(
                await asyncio.create_subprocess_exec(
                    *MUSTER,
                    "sim",
                    "idcard",
                    "--listen",
                    f"{host}:{reader_port}",
                    "--people",
                    str(visitors),
                    "--township",
                    township,
                    "--seed",
                    str(seed + i),
                    "--dwell-s",
                    "0.8",
                    "--gap-s",
                    "0.4",
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        profile = state_dir / "profile.yaml"
        profile.write_text(
            device_profile(f"socket://{host}:{reader_port}", camera_file), encoding="utf-8"
        )
        code = create_enrollment_code(
            controller.sessions,
            township_code=township,
            profile="simulator",
            valid_for=timedelta(hours=1),
            created_by="demo",
            now=now,
        )
        env = {**os.environ, "MUSTER_EDGE_ENROLLMENT_CODE": code}
        with (logs / f"device-{i + 1}.log").open("wb") as log_file:
            edges.append(
                await asyncio.create_subprocess_exec(
                    *MUSTER,
                    "edge",
                    "run",
                    "--profile",
                    str(profile),
                    "--state-dir",
                    str(state_dir),
                    "--controller",
                    f"{host}:{settings.enrol_port}",
                    "--ca-cert",
                    str(controller.pki.ca_cert_path),
                    env=env,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    # Own session: Ctrl-C reaches only the demo, which then stops the devices in
                    # order (collection first, uploads drained) instead of all at once.
                    start_new_session=True,
                )
            )
        print(
            f"设备 device-{i + 1}: 乡镇 {township}, {visitors_count[-1]} 位来访者 visitors, "
            f"pid {edges[-1].pid}, log {logs / f'device-{i + 1}.log'}",
            flush=True,
        )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = clock.monotonic()
    interactive = sys.stderr.isatty()
    last_print = -status_every_s
    reported_exit: set[int] = set()
    while not stop.is_set():
        elapsed = clock.monotonic() - started
        if duration is not None and elapsed >= duration:
            break
        await controller.consumer.flush()
        numbers = await asyncio.to_thread(fleet_numbers, controller)
        if interactive:
            print("\r" + _status_line(numbers, elapsed), end="", file=sys.stderr, flush=True)
        elif elapsed - last_print >= status_every_s:
            print(_status_line(numbers, elapsed), file=sys.stderr, flush=True)
            last_print = elapsed
        # A device that ends (killed to see an alert, or failing) is the fleet's business, as it
        # would be in the field: the rest go on, and the admin UI shows it offline, then alerting.
        for i, edge in enumerate(edges):
            if edge.returncode is not None and i not in reported_exit:
                reported_exit.add(i)
                print(
                    f"\n设备 device-{i + 1} 已退出 (exit {edge.returncode})，其余设备继续运行；"
                    f"管理界面将显示其离线并告警 (see {logs}/device-{i + 1}.log)",
                    file=sys.stderr,
                    flush=True,
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=min(1.0, status_every_s))
    if interactive:
        print(file=sys.stderr)

    await controller.consumer.flush()
    at_end = await asyncio.to_thread(fleet_numbers, controller)
    print(
        "正在停止设备并等待上传完成 (stopping devices, draining uploads)…",
        file=sys.stderr,
        flush=True,
    )
    for edge in edges:
        if edge.returncode is None:
            edge.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(edge.wait() for edge in edges))
    except TimeoutError:
        for edge in edges:
            if edge.returncode is None:
                edge.kill()
        await asyncio.gather(*(edge.wait() for edge in edges))
    for simulator in simulators:
        if simulator.returncode is None:
            simulator.terminate()
    await asyncio.gather(*(simulator.wait() for simulator in simulators))
    await clock.sleep(0.5)  # let the broker deliver the goodbyes
    await controller.consumer.flush()
    final = await asyncio.to_thread(fleet_numbers, controller)
    summary = {
        "devices_enrolled": final.devices_enrolled,
        "devices_online": at_end.devices_online,
        "devices_offline": at_end.devices_offline,
        "devices_exited": sorted(f"device-{i + 1}" for i in reported_exit),
        "alerts_open": at_end.alerts_open,
        "records_sealed": final.records_sealed,
        "records_acked": final.records_acked,
        "outbox_left": final.outbox_depth,
        "admin_url": controller.admin_url,
        "data_dir": str(data_dir),
        "duration_s": round(clock.monotonic() - started, 1),
    }
    await controller.stop()
    await broker.stop()
    return summary


@click.command()
@click.option(
    "--devices", default=3, show_default=True, type=click.IntRange(1, 200), help="simulated devices"
)
@click.option(
    "--duration", type=click.FloatRange(min=1), help="stop after S seconds (default: until Ctrl-C)"
)
@click.option(
    "--data-dir", type=click.Path(path_type=Path), help="keep state here (default: a temp dir)"
)
@click.option(
    "--admin-port",
    default=8080,
    show_default=True,
    help="admin UI port (another is chosen if busy)",
)
@click.option(
    "--seed",
    default=2018,
    show_default=True,
    help="seed of the initial data and of the order the visitors come in (the same seed, "
    "the same people)",
)
@click.option(
    "--status-every",
    "status_every_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0.2),
    help="seconds between two progress lines when stderr is not a terminal",
)
def demo(
    devices: int,
    duration: float | None,
    data_dir: Path | None,
    admin_port: int,
    seed: int,
    status_every_s: float,
) -> None:
    """Run a controller and a simulated fleet on this machine (Ctrl-C to stop)."""
    configure_logging("WARNING")
    directory = data_dir or Path(tempfile.mkdtemp(prefix="muster-demo-"))
    summary = asyncio.run(
        run_demo(
            devices,
            duration,
            directory,
            admin_port,
            clock=SystemClock(),
            seed=seed,
            status_every_s=status_every_s,
        )
    )
    print(json.dumps(summary, ensure_ascii=False), flush=True)
