"""``muster controller ...``: run the central service and look after its database."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from controller.settings import ControllerSettings
from muster.logs import configure_logging


def _settings(**options: object) -> ControllerSettings:
    given = {k: v for k, v in options.items() if v not in (None, ())}
    if "public_hostnames" in given:
        given["public_hostnames"] = list(given["public_hostnames"])  # type: ignore[call-overload]
    return ControllerSettings(**given)  # type: ignore[arg-type]


_common = [
    click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        help="keys and the SQLite database (default var/controller)",
    ),
    click.option(
        "--database-url",
        help="e.g. postgresql+psycopg://muster@db/muster (default: SQLite in the data dir)",
    ),
]


def _with_common(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_common):
        fn = option(fn)
    return fn


@click.group()
def controller() -> None:
    """The central controller: enrolment, uploads, telemetry, admin."""


@controller.command()
@_with_common
@click.option("--bind", "bind_host", help="address to listen on (default 127.0.0.1)")
@click.option(
    "--hostname",
    "public_hostnames",
    multiple=True,
    help="name or IP devices use to reach us (repeatable)",
)
@click.option("--enrol-port", type=int, help="server-TLS port for enrolment (default 7443)")
@click.option("--data-port", type=int, help="mutual-TLS port for uploads (default 7444)")
@click.option("--admin-port", type=int, help="admin web UI and API (default 8080)")
@click.option("--mqtt-url", help="broker for telemetry, mqtt://HOST:PORT or mqtts://HOST:PORT")
@click.option("--device-mqtt-url", help="broker URL handed to devices, when it differs from ours")
@click.option(
    "--shared-group", "mqtt_shared_group", help="MQTT shared-subscription group for replicas"
)
@click.option("--log-level", default="INFO", show_default=True)
def run(log_level: str, **options: object) -> None:
    """Run the controller until SIGINT/SIGTERM."""
    from controller.app import run_controller

    configure_logging(log_level)
    settings = _settings(**options)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_controller(settings, stop)

    asyncio.run(main())


@controller.command()
@_with_common
def migrate(**options: object) -> None:
    """Bring the database schema up to date (also done by `run` at start)."""
    from controller.db import migrate as do_migrate

    settings = _settings(**options)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    do_migrate(settings.resolved_database_url())
    click.echo("数据库结构已是最新 (schema is up to date)")
