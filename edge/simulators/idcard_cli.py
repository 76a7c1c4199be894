"""``muster sim idcard``: serve a simulated SAM ID-card reader on a TCP port."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from edge.drivers.sam.protocol import BAUD_CODES
from edge.simulators.idcard import (
    DEFAULT_CARD,
    Fault,
    FaultRule,
    IdCardSimulator,
    SimulatorServer,
    load_card,
)


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT")
    return host, int(port)


@click.command()
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    help="HOST:PORT to listen on; port 0 picks a free one. Open it as socket://HOST:PORT.",
)
@click.option(
    "--card",
    "card_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Card description (JSON). Default: {DEFAULT_CARD.name}.",
)
@click.option("--no-card", is_flag=True, help="Start with no card in the field.")
@click.option(
    "--baud",
    type=click.Choice([str(b) for b in BAUD_CODES]),
    default="115200",
    show_default=True,
    help="Line rate the replies are paced at.",
)
@click.option(
    "--fault",
    "fault_specs",
    multiple=True,
    metavar="KIND[:COMMAND[:TIMES]]",
    help=(
        f"Scripted fault, repeatable. KIND: {', '.join(f.value for f in Fault)}. "
        "COMMAND: any, find, select, read, read-fp, address, sam-id, status, reset. "
        "TIMES: how many replies it hits (default: all)."
    ),
)
@click.option(
    "--slow-s", type=float, default=1.0, show_default=True, help="Delay of the 'slow' fault."
)
def idcard(
    listen: str,
    card_path: Path | None,
    no_card: bool,
    baud: str,
    fault_specs: tuple[str, ...],
    slow_s: float,
) -> None:
    """Simulated SAM ID-card reader (模拟二代证读卡器) on a real TCP transport."""
    host, port = _listen(listen)
    if no_card and card_path is not None:
        raise click.UsageError("--card and --no-card exclude each other")
    try:
        faults = [FaultRule.parse(spec) for spec in fault_specs]
        card = None if no_card else load_card(card_path or DEFAULT_CARD)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    simulator = IdCardSimulator(card, baud=int(baud), slow_s=slow_s, faults=faults)
    asyncio.run(_serve(SimulatorServer(simulator, host, port)))


async def _serve(server: SimulatorServer) -> None:
    try:
        await server.plug()
    except OSError as exc:
        raise click.ClickException(
            f"无法监听 / cannot listen on {server.host}:{server.port}: {exc}"
        ) from exc
    card = server.simulator.card
    what = f"{card.text.name} ({card.text.card_type.label})" if card else "无卡 / no card"
    click.echo(f"SAM 读卡器模拟器 / SAM reader simulator: {server.url}  卡 / card: {what}")
    try:
        await asyncio.Event().wait()
    finally:
        await server.unplug()
