"""``muster edge run``: the device daemon."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import click

from edge.settings import EdgeSettings
from muster.clock import SystemClock
from muster.errors import MusterError
from muster.logs import configure_logging

__all__ = ["run"]


@click.command()
@click.option(
    "--profile", help="firmware profile: a YAML path or a shipped name (default simulator)"
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="identity, licence and outbox (default var/edge)",
)
@click.option("--controller", help="controller enrolment endpoint HOST:PORT (first start only)")
@click.option(
    "--ca-cert",
    type=click.Path(path_type=Path),
    help="controller CA certificate (first start only)",
)
@click.option("--code", "enrollment_code", help="enrolment code from the centre (first start only)")
@click.option("--log-level", help="DEBUG, INFO, WARNING (default INFO)")
@click.option(
    "--broker",
    "brokers",
    multiple=True,
    help="a broker cluster node, mqtts://HOST:PORT, once per node in the order tried "
    "(default: the broker named at enrolment)",
)
def run(**options: object) -> None:
    """Run the collection daemon until SIGINT/SIGTERM; enrols first if the device is new."""
    from edge.daemon import run_daemon

    given = {k: v for k, v in options.items() if v is not None and v != ()}
    settings = EdgeSettings(**given)  # type: ignore[arg-type]
    configure_logging(settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_daemon(settings, stop, SystemClock())

    try:
        asyncio.run(main())
    except MusterError as exc:
        click.echo(f"错误 (error): {exc}", err=True)
        sys.exit(2)
