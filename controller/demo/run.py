"""``muster demo``: a controller, an in-process broker and a small fleet of simulated devices on
one machine, on embedded defaults. Everything enrols, reports and uploads through the real
paths (TLS, gRPC, MQTT, SQLite); the last line printed is a JSON summary."""

from __future__ import annotations

import asyncio
import contextlib
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
from controller.db.models import Device, Record
from controller.demo.embedded_broker import EmbeddedBroker
from controller.devices.enrolment import create_enrollment_code
from controller.records.initial_import import Importer
from controller.settings import ControllerSettings
from muster.clock import SystemClock
from muster.dataset import synthetic_rows
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


def import_demo_people(controller: Controller, devices: int, per_township: int = 300) -> int:
    townships = DEMO_TOWNSHIPS[: min(devices, len(DEMO_TOWNSHIPS))]
    rows = synthetic_rows(
        per_township * len(townships), townships, random.Random(2018), controller.clock.today()
    )
    report = Importer(controller.sessions, clock=controller.clock).import_rows(
        enumerate(rows, start=2)
    )
    return report.added + report.unchanged + report.changed


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


def fleet_numbers(controller: Controller) -> FleetNumbers:
    with controller.sessions() as session:
        devices = list(session.scalars(select(Device)))
        acked = session.scalar(select(func.count()).select_from(Record)) or 0
    sealed = sum(int(d.last_heartbeat.get("records_sealed", 0)) for d in devices)
    return FleetNumbers(
        devices_enrolled=len(devices),
        devices_online=sum(1 for d in devices if d.online),
        records_sealed=sealed,
        records_acked=acked,
        outbox_depth=sum(d.outbox_depth for d in devices),
    )


def _status_line(n: FleetNumbers, elapsed: float) -> str:
    return (
        f"[{elapsed:5.0f}s] 设备 enrolled {n.devices_enrolled} · online {n.devices_online} · "
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
    devices: int, duration: float | None, data_dir: Path, admin_port: int
) -> dict[str, Any]:
    host = "127.0.0.1"
    clock = SystemClock()
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
    people = await asyncio.to_thread(import_demo_people, controller, devices)
    print(f"初始数据 initial data: {people} 人 people imported", flush=True)
    print(f"管理界面 admin UI: {controller.admin_url}", flush=True)
    login = await asyncio.to_thread(_demo_admin, controller)
    print(f"管理员 admin login: {login[0]} / {login[1]}", flush=True)
    print(f"数据目录 data: {data_dir}", flush=True)

    now = clock.now()
    edges: list[asyncio.subprocess.Process] = []
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Simulated hardware on real transports: one SAM reader simulator per device with a queue of
    # visitors from its county, and one recorded camera they all watch.
    camera_file = data_dir / "camera.avi"
    await _run_quiet(
        sys.executable, "-m", "muster", "sim", "camera", "--out", str(camera_file), "--seconds", "4"
    )
    simulators: list[asyncio.subprocess.Process] = []
    for i in range(devices):
        township = DEMO_TOWNSHIPS[i % len(DEMO_TOWNSHIPS)]
        reader_port = free_port()
        with (logs / f"reader-{i + 1}.log").open("wb") as log_file:
            simulators.append(
                await asyncio.create_subprocess_exec(
                    *MUSTER,
                    "sim",
                    "idcard",
                    "--listen",
                    f"{host}:{reader_port}",
                    "--queue",
                    "200",
                    "--county",
                    township[:6],
                    "--seed",
                    str(i),
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
        state_dir = data_dir / f"device-{i + 1}"
        state_dir.mkdir(parents=True, exist_ok=True)
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

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = clock.monotonic()
    interactive = sys.stderr.isatty()
    last_print = 0.0
    while not stop.is_set():
        elapsed = clock.monotonic() - started
        if duration is not None and elapsed >= duration:
            break
        await controller.consumer.flush()
        numbers = await asyncio.to_thread(fleet_numbers, controller)
        if interactive:
            print("\r" + _status_line(numbers, elapsed), end="", file=sys.stderr, flush=True)
        elif elapsed - last_print >= 5:
            print(_status_line(numbers, elapsed), file=sys.stderr, flush=True)
            last_print = elapsed
        for i, edge in enumerate(edges):
            if edge.returncode is not None:
                print(
                    f"\n设备 {i + 1} 已退出 (exit {edge.returncode}); see {logs}/device-{i + 1}.log",
                    file=sys.stderr,
                )
                stop.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    if interactive:
        print(file=sys.stderr)

    await controller.consumer.flush()
    online_at_end = (await asyncio.to_thread(fleet_numbers, controller)).devices_online
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
        "devices_online": online_at_end,
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
def demo(devices: int, duration: float | None, data_dir: Path | None, admin_port: int) -> None:
    """Run a controller and a simulated fleet on this machine (Ctrl-C to stop)."""
    configure_logging("WARNING")
    directory = data_dir or Path(tempfile.mkdtemp(prefix="muster-demo-"))
    summary = asyncio.run(run_demo(devices, duration, directory, admin_port))
    print(json.dumps(summary, ensure_ascii=False), flush=True)
