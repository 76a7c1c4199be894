"""``muster controller clerk ...``: the township clerks' console accounts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from controller.cli.options import (
    command_session,
    data_dir_option,
    database_url_option,
)
from muster.clock import SystemClock


@click.group()
def clerk() -> None:
    """Console accounts of township clerks (delivered to the township's devices)."""


@clerk.command("add")
@click.option("--township", required=True, help="12-digit township code")
@click.option("--username", required=True, help="login name, e.g. zhang.wei")
@click.option("--display-name", required=True, help="the clerk's name as shown in the audit")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="read the password from standard input instead of prompting",
)
@data_dir_option
@database_url_option
def add(
    township: str,
    username: str,
    display_name: str,
    password_stdin: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Add a clerk, or reset an existing clerk's password (and re-enable the account)."""
    from controller.accounts.clerks import add_clerk

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("密码 (password)", hide_input=True, confirmation_prompt=True)
    with command_session(data_dir, database_url) as session:
        add_clerk(
            session,
            township_code=township,
            username=username,
            display_name=display_name,
            password=password,
            now=SystemClock().now(),
        )
    click.echo(f"已保存用户 {username}（{display_name}）；本乡镇设备下次连接中心时获得该账号")


@clerk.command("disable")
@click.option("--township", required=True, help="12-digit township code of the clerk")
@click.option("--username", required=True, help="the clerk's login name")
@data_dir_option
@database_url_option
def disable(township: str, username: str, data_dir: Path | None, database_url: str | None) -> None:
    """Disable a clerk's account on every device of the township."""
    from controller.accounts.clerks import disable_clerk

    with command_session(data_dir, database_url) as session:
        disable_clerk(session, township, username, SystemClock().now())
    click.echo(f"已停用用户 {username}")


@clerk.command("list")
@click.option("--township", required=True, help="12-digit township code")
@data_dir_option
@database_url_option
def list_(township: str, data_dir: Path | None, database_url: str | None) -> None:
    """The township's clerks as JSON lines."""
    from controller.accounts.clerks import township_clerks

    with command_session(data_dir, database_url) as session:
        for c in township_clerks(session, township):
            click.echo(
                json.dumps(
                    {
                        "username": c.username,
                        "display_name": c.display_name,
                        "disabled": c.disabled_at is not None,
                    },
                    ensure_ascii=False,
                )
            )
