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
    SimCard,
    SimulatorServer,
    load_card,
    load_visitors,
    present_in_turn,
    synthetic_cards,
    visitor_cards,
)
from muster.clock import SystemClock


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
@click.option(
    "--queue",
    "queue_size",
    type=click.IntRange(min=1),
    help="A queue of N synthetic visitors: each card is presented in turn instead of --card.",
)
@click.option(
    "--people",
    "people_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Visitors from initial data (a CSV of `muster sim dataset`): each comes once, in a "
    "seeded order, instead of --card or --queue.",
)
@click.option(
    "--township",
    help="With --people: only the people of this 12-digit township (the device's own).",
)
@click.option(
    "--county", default="370902", show_default=True, help="6-digit county of the visitors"
)
@click.option(
    "--dwell-s",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds each card lies on the reader.",
)
@click.option(
    "--gap-s", type=float, default=1.0, show_default=True, help="Seconds between two cards."
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the synthetic visitors."
)
def idcard(
    listen: str,
    card_path: Path | None,
    no_card: bool,
    baud: str,
    fault_specs: tuple[str, ...],
    slow_s: float,
    queue_size: int | None,
    people_path: Path | None,
    township: str | None,
    county: str,
    dwell_s: float,
    gap_s: float,
    seed: int,
) -> None:
    """Simulated SAM ID-card reader (模拟二代证读卡器) on a real TCP transport."""
    host, port = _listen(listen)
    if no_card and card_path is not None:
        raise click.UsageError("--card and --no-card exclude each other")
    if queue_size and (card_path is not None or no_card):
        raise click.UsageError("--queue presents its own cards; leave out --card and --no-card")
    if people_path is not None and (queue_size or card_path is not None or no_card):
        raise click.UsageError(
            "--people presents its own cards; leave out --queue, --card, --no-card"
        )
    if township is not None and people_path is None:
        raise click.UsageError("--township chooses among --people; give --people FILE too")
    if township is not None and not (len(township) == 12 and township.isdigit()):
        raise click.BadParameter(
            f"{township!r} is not a 12-digit township code, e.g. 370902001000",
            param_hint="--township",
        )
    if queue_size and not (len(county) == 6 and county.isdigit()):
        raise click.BadParameter(f"{county!r} is not a 6-digit county code", param_hint="--county")
    try:
        faults = [FaultRule.parse(spec) for spec in fault_specs]
        queue = synthetic_cards(county, queue_size, seed=seed) if queue_size else []
        if people_path is not None:
            visitors = load_visitors(people_path, township)
            if not visitors:
                raise ValueError(
                    f"{people_path}: nobody of township {township} in it; "
                    "use a township the file holds (muster sim dataset --township CODE)"
                )
            queue = visitor_cards(visitors, seed=seed)
        card = None if no_card or queue else load_card(card_path or DEFAULT_CARD)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    simulator = IdCardSimulator(
        card, baud=int(baud), slow_s=slow_s, faults=faults, clock=SystemClock()
    )
    rounds = 1 if people_path is not None else None
    asyncio.run(_serve(SimulatorServer(simulator, host, port), queue, dwell_s, gap_s, rounds))


async def _serve(
    server: SimulatorServer,
    queue: list[SimCard] | None = None,
    dwell_s: float = 2.0,
    gap_s: float = 1.0,
    rounds: int | None = None,
) -> None:
    try:
        await server.plug()
    except OSError as exc:
        raise click.ClickException(
            f"无法监听 / cannot listen on {server.host}:{server.port}: {exc}"
        ) from exc
    card = server.simulator.card
    what = f"{card.text.name} ({card.text.card_type.label})" if card else "无卡 / no card"
    if queue:
        what = f"{len(queue)} 位来访者轮流读卡 / {len(queue)} visitors in turn"
    click.echo(
        f"SAM 读卡器模拟器 / SAM reader simulator: {server.url}  卡 / card: {what}", err=bool(queue)
    )
    try:
        if queue:
            await present_in_turn(
                server.simulator, queue, dwell_s=dwell_s, gap_s=gap_s, rounds=rounds
            )
            click.echo("所有来访者已读卡 / every visitor has come", err=True)
            await asyncio.Event().wait()
        else:
            await asyncio.Event().wait()
    finally:
        await server.unplug()
