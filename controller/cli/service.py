"""``muster controller ...``: run the central service and look after its database."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click
from pydantic import ValidationError

from controller.cli.options import Refused, data_dir_option, database_url_option, tell_rejections
from controller.settings import ControllerSettings
from muster.clock import SystemClock
from muster.logs import configure_logging


def _settings(**options: object) -> ControllerSettings:
    given = {k: v for k, v in options.items() if v not in (None, ())}
    for many in ("public_hostnames", "device_brokers"):
        if many in given:
            given[many] = list(given[many])  # type: ignore[call-overload]
    try:
        return ControllerSettings(**given)  # type: ignore[arg-type]
    except ValidationError as exc:
        # One line per setting, in its words, not pydantic's traceback.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise click.UsageError(f"设置有误 (bad settings): {problems}") from None


_common = [data_dir_option, database_url_option]


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
@click.option(
    "--applications-port",
    type=int,
    help="S-30 applicants' pages and departments' callbacks (default: not served)",
)
@click.option("--mqtt-url", help="broker for telemetry, mqtt://HOST:PORT or mqtts://HOST:PORT")
@click.option("--device-mqtt-url", help="broker URL handed to devices, when it differs from ours")
@click.option(
    "--device-broker",
    "device_brokers",
    multiple=True,
    help="a node of the broker cluster devices are told, once per node in the order they try "
    "them (over --device-mqtt-url)",
)
@click.option(
    "--shared-group", "mqtt_shared_group", help="MQTT shared-subscription group for replicas"
)
@click.option(
    "--broker-pid-file",
    type=click.Path(path_type=Path),
    help="a local Mosquitto's pid file; it gets SIGHUP to re-read pki/crl.pem after a revocation",
)
@click.option(
    "--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR"
)
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
        await run_controller(settings, stop, SystemClock())

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


@controller.command(name="import")
@_with_common
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="initial data, .csv (UTF-8, or GBK as Chinese Excel saves it) or .xlsx "
    "(headers as written by `muster sim dataset`)",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="write the rejected rows and their reasons here (CSV; default FILE.rejected.csv)",
)
def import_(path: Path, report_path: Path | None, **options: object) -> None:
    """Import the initial data (S-04): validate every row, store by township, idempotently.

    A file that cannot be read (encoding, a broken CSV, not a workbook) is refused with the
    file, the line and the fix, exit status 2, before the database is opened."""
    import json

    from rich.progress import Progress

    from controller.db import open_database
    from controller.records.initial_import import check_file, import_file, write_rejections
    from muster.errors import ConfigError

    try:
        checked = check_file(path)
        with open_database(_settings(**options)) as sessions, Progress(transient=True) as progress:
            task = progress.add_task("导入 importing", total=checked.rows)
            report = import_file(
                sessions,
                checked,
                progress=lambda n: progress.advance(task, n),
                clock=SystemClock(),
            )
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    if report.rejected:
        report_path = report_path or path.with_name(path.name + ".rejected.csv")
        write_rejections(report_path, report.rejected)
        tell_rejections(
            len(report.rejected), [(r.line, r.reason) for r in report.rejected[:10]], report_path
        )
    s = report.summary()
    click.echo(
        f"共 {s['rows']} 行：新增 {s['added']}，更新 {s['changed']}，迁出 {s['moved']}，"
        f"未变 {s['unchanged']}，拒绝 {s['rejected']}；{s['townships_changed']} 个乡镇的数据切片已更新"
    )
    click.echo(json.dumps(s))


@controller.command(name="rotate-upload-key")
@_with_common
def rotate_upload_key_command(**options: object) -> None:
    """Add a new upload key version; devices seal to it after their next health check, and
    records sealed to older versions still open."""
    from controller.db import open_database
    from controller.devices.enrolment import publish_upload_keys
    from controller.devices.pki_store import ensure_controller_pki, rotate_upload_key

    settings = _settings(**options)
    now = SystemClock().now()
    pki = ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now)
    version = rotate_upload_key(pki)
    with open_database(settings) as sessions, sessions.begin() as session:
        # Reloaded: the key just written is not in the PKI loaded before the rotation.
        publish_upload_keys(
            session,
            ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now),
            now,
        )
    click.echo(
        f"上传密钥已轮换为第 {version} 版；设备在下次健康检查后改用新密钥，旧版本的记录照常解密"
    )


@controller.command(name="slice")
@_with_common
@click.option("--township", required=True, help="12-digit township code")
@click.option("--revoke", is_flag=True, help="withdraw the slice: devices wipe it at next sync")
@click.option("--restore", is_flag=True, help="undo a withdrawal")
@click.option("--expires", help="devices wipe the slice after this date (YYYY-MM-DD)")
@click.option("--reason", default="", help="why (kept with the withdrawal)")
def slice_command(
    township: str,
    revoke: bool,
    restore: bool,
    expires: str | None,
    reason: str,
    **options: object,
) -> None:
    """Show, withdraw (revoke) or set the expiry of a township's slice."""
    from controller.db import open_database
    from controller.records.slices import set_slice_state
    from muster.errors import ConfigError

    try:
        with open_database(_settings(**options)) as sessions:
            state = set_slice_state(
                sessions,
                township,
                revoke=revoke,
                restore=restore,
                expires=expires,
                reason=reason,
                now=SystemClock().now(),
            )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(state)


@controller.command("register-simulated")
@_with_common
@click.option(
    "--devices",
    "count",
    type=click.IntRange(1, 1_000_000),
    required=True,
    help="how many simulated devices (the same N as muster sim fleet --devices)",
)
@click.option("--first", type=click.IntRange(min=0), default=0, help="index of the first device")
def register_simulated(count: int, first: int, **options: object) -> None:
    """Register `muster sim fleet`'s simulated devices in bulk (for load tests and UI trials)."""
    from controller.db import open_database
    from controller.demo.simulated_fleet import register_simulated as register

    now = SystemClock().now()
    with open_database(_settings(**options)) as sessions:
        added = register(sessions, count, first=first, now=now, progress=True)
    click.echo(f"新登记模拟设备 {added} 台 (registered {added} simulated devices)")


def _clerk_group() -> None:
    from controller.cli.clerks import clerk

    controller.add_command(clerk)


_clerk_group()


def _admin_groups() -> None:
    from controller.cli.admin import admin, dataset, regions

    for group in (admin, regions, dataset):
        controller.add_command(group)


_admin_groups()


def _broker_config() -> None:
    from controller.cli.broker import broker_config

    controller.add_command(broker_config)


_broker_config()


def _comparison_commands() -> None:
    from controller.cli.compare import compare, extract

    controller.add_command(extract)
    controller.add_command(compare)


_comparison_commands()


def _confirmation_commands() -> None:
    from controller.cli.confirmation import confirmation

    controller.add_command(confirmation)


_confirmation_commands()


def _department_commands() -> None:
    from controller.cli.departments import deliver, department

    controller.add_command(department)
    controller.add_command(deliver)


_department_commands()


def _release_groups() -> None:
    from controller.cli.releases import release, rollout

    controller.add_command(release)
    controller.add_command(rollout)


_release_groups()
