"""``muster sim fleet``: N simulated devices in one process, on a real broker."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from edge.simulators.fleet import FleetShape, FleetSimulator, print_progress
from muster.clock import SystemClock
from muster.errors import MusterError


@click.command("fleet")
@click.option(
    "--devices",
    "count",
    type=click.IntRange(1, 1_000_000),
    default=1000,
    show_default=True,
    help="how many devices to simulate",
)
@click.option("--broker", required=True, help="plain broker URL, mqtt://HOST:PORT")
@click.option(
    "--connections",
    type=click.IntRange(1, 256),
    default=4,
    show_default=True,
    help="MQTT connections the devices are spread over",
)
@click.option(
    "--duration", type=click.FloatRange(min=1), help="seconds to run (default: until Ctrl-C)"
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    help="heartbeat interval for every device (default: each profile's, 60 s / 120 s)",
)
@click.option(
    "--offline-share",
    type=click.FloatRange(0, 1),
    default=0.03,
    show_default=True,
    help="share of devices that go offline now and then",
)
@click.option(
    "--hang-share",
    type=click.FloatRange(0, 1),
    default=0.01,
    show_default=True,
    help="share of devices that stop sending heartbeats while connected",
)
@click.option(
    "--faults-per-hour",
    type=click.FloatRange(min=0),
    default=0.05,
    show_default=True,
    help="reader faults per device per hour",
)
@click.option("--first", type=click.IntRange(min=0), default=0, help="index of the first device")
@click.option(
    "--seed", type=int, default=7, show_default=True, help="same seed, same fleet behaviour"
)
def fleet(
    count: int,
    broker: str,
    connections: int,
    duration: float | None,
    interval: float | None,
    offline_share: float,
    hang_share: float,
    faults_per_hour: float,
    first: int,
    seed: int,
) -> None:
    """Simulate a fleet: retained statuses, heartbeats, reader faults and command acks.

    The controller must know the devices: register them first with
    `muster controller register-simulated --devices N` (same N and --first).
    """
    shape = FleetShape(
        offline_share=offline_share,
        hang_share=hang_share,
        reader_faults_per_hour=faults_per_hour,
        interval_s=interval,
        seed=seed,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sim = FleetSimulator(
            broker,
            count,
            connections=connections,
            shape=shape,
            first=first,
            clock=SystemClock(),
        )
        sim.connect()
    except MusterError as exc:
        raise click.ClickException(str(exc)) from exc
    modes: dict[str, Any] = {}
    for device in sim.devices.values():
        modes[device.mode] = modes.get(device.mode, 0) + 1
    print_progress(f"模拟设备 simulated devices: {count} ({modes}); announcing status…")
    try:
        sim.announce()
        print_progress("running; Ctrl-C to stop")
        sent = sim.run(duration, stop=stop, progress=print_progress)
    finally:
        sim.close()
    click.echo(
        f'{{"heartbeats_sent": {sent}, "events_sent": {sim.events_sent}, "acks_sent": {sim.acks_sent}}}'
    )
