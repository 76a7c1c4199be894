"""``muster controller department add|list|disable`` (S-30 departments as configuration) and
``muster controller deliver`` (the delivery outbox's sender on its own, for a dedicated
replica and the kill -9 fault test)."""

from __future__ import annotations

import asyncio
import json
import signal
from dataclasses import asdict
from pathlib import Path

import click

from controller.cli.options import (
    command_session,
    data_dir_option,
    database_url_option,
    settings_for,
)
from muster.clock import SystemClock
from muster.one_application import ITEMS

__all__ = ["deliver", "department"]


@click.group()
def department() -> None:
    """Departments' systems that S-30 items are delivered to."""


@department.command("add")
@click.option("--kind", required=True, type=click.Choice(list(ITEMS)), help="the item it handles")
@click.option("--url", required=True, help="its HTTPS endpoint for deliveries")
@click.option(
    "--secret-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="the shared whsec_ secret; a new one is written here if the file does not exist",
)
@click.option("--name", default="", help="shown on the dashboard (default: agency and item)")
@click.option("--region", "region_prefix", default="", help="region code prefix it serves")
@click.option("--place", default="", help="where applicants are sent, e.g. 环翠区退役军人服务中心")
@click.option(
    "--overdue-days",
    type=click.IntRange(1, 365),
    default=5,
    show_default=True,
    help="days the department has to answer an application before it is overdue",
)
@click.option("--allow-http", is_flag=True, help="accept http:// (a local simulator only)")
@data_dir_option
@database_url_option
def add(
    kind: str,
    url: str,
    secret_file: Path | None,
    name: str,
    region_prefix: str,
    place: str,
    overdue_days: int,
    allow_http: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Register a department; deliveries to it are signed with its own secret."""
    from controller.applications.departments import add_department
    from muster.application_wire import new_secret

    secret = ""
    if secret_file is not None and secret_file.exists():
        secret = secret_file.read_text(encoding="utf-8").strip()
        if not secret:
            raise click.UsageError(f"{secret_file} is empty; delete it to have a secret made")
    elif secret_file is not None:
        secret = new_secret()
        tmp = secret_file.with_name(secret_file.name + ".tmp")
        tmp.write_text(secret + "\n", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(secret_file)
    with command_session(data_dir, database_url) as session:
        view, _ = add_department(
            session,
            kind=kind,
            url=url,
            secret=secret,
            name=name,
            region_prefix=region_prefix,
            place=place,
            overdue_days=overdue_days,
            allow_http=allow_http,
            now=SystemClock().now(),
        )
    click.echo(f"已登记部门 {view.id}：{view.name} → {view.url}")
    if secret_file is None:
        click.echo("未给 --secret-file：密钥只保存在中心数据库中，部门需要向管理员索取", err=True)


@department.command("list")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines instead of a table")
@data_dir_option
@database_url_option
def list_(as_json: bool, data_dir: Path | None, database_url: str | None) -> None:
    """Every department, enabled or not (secrets are never shown)."""
    from controller.applications.departments import list_departments

    with command_session(data_dir, database_url) as session:
        views = list_departments(session)
    if as_json:
        click.echo(json.dumps([asdict(v) for v in views], ensure_ascii=False))
        return
    for v in views:
        state = "启用" if v.enabled else "停用"
        click.echo(f"{v.id}\t{v.kind}\t{state}\t{v.region_prefix or '*'}\t{v.name}\t{v.url}")


@department.command("disable")
@click.argument("department_id", type=int)
@data_dir_option
@database_url_option
def disable(department_id: int, data_dir: Path | None, database_url: str | None) -> None:
    """Stop routing new items to a department (what was delivered stays)."""
    from controller.applications.departments import disable_department

    with command_session(data_dir, database_url) as session:
        view = disable_department(session, department_id)
    click.echo(f"部门 {view.id} 已停用：{view.name}")


@click.command("deliver")
@click.option(
    "--lease-s",
    type=click.FloatRange(0.1, 3600),
    default=60.0,
    show_default=True,
    help="seconds a sender holds a delivery before another may take it over",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 1000),
    default=64,
    show_default=True,
    help="deliveries taken at a time",
)
@data_dir_option
@database_url_option
def deliver(lease_s: float, batch: int, data_dir: Path | None, database_url: str | None) -> None:
    """Run only the delivery outbox's sender until SIGINT/SIGTERM."""
    from controller.applications.sender import DeliverySender
    from controller.db import open_database

    clock = SystemClock()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with open_database(settings_for(data_dir, database_url)) as sessions:
            sender = DeliverySender(sessions, clock, batch=batch, lease_s=lease_s, idle_s=0.2)
            task = asyncio.create_task(sender.run())
            await stop.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sender.aclose()

    asyncio.run(main())
