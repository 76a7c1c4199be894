"""``muster controller admin|regions|dataset ...``: central admin accounts, the region tree and
the data sets sent up the hierarchy."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from controller.cli.options import (
    command_session,
    data_dir_option,
    database_url_option,
    settings_for,
)
from muster.clock import SystemClock

if TYPE_CHECKING:
    from controller.devices.pki_store import ControllerPki


@click.group()
def admin() -> None:
    """Central admin accounts: role, region, password, API token."""


@admin.command("add")
@click.option("--username", required=True, help="login name, e.g. wang.fang")
@click.option(
    "--role",
    required=True,
    help="what the admin may see and do: a level of the region tree, auditor or technician",
    type=click.Choice(
        ["ministry", "province", "city", "county", "township", "auditor", "technician"]
    ),
)
@click.option(
    "--region",
    default="",
    help="region prefix of the admin's area: 37 (province), 3709 (city), 370902 (county), "
    "370902001 (township); empty for the ministry",
)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False, allow_dash=True),
    help="read the password from this file (first line) instead of prompting; '-' is stdin",
)
@data_dir_option
@database_url_option
def add(
    username: str,
    role: str,
    region: str,
    password_file: Path | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Add an admin, or reset an existing one's role, region and password."""
    from controller.accounts.admins import ROLES, add_admin

    if password_file is not None and str(password_file) == "-":
        password = sys.stdin.readline().rstrip("\r\n")
    elif password_file is not None:
        password = password_file.read_text(encoding="utf-8").splitlines()[0].strip()
    elif not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("密码 (password)", hide_input=True, confirmation_prompt=True)
    with command_session(data_dir, database_url) as session:
        add_admin(
            session,
            username=username,
            role=role,
            region=region,
            password=password,
            now=SystemClock().now(),
        )
    click.echo(f"已保存管理员 {username}：{ROLES[role]}，管辖范围 {region or '全国'}")


@admin.command("token")
@click.option("--username", required=True, help="the admin's login name")
@data_dir_option
@database_url_option
def token(username: str, data_dir: Path | None, database_url: str | None) -> None:
    """Print a new API token for scripts (the previous one stops working). Use it as
    ``Authorization: Bearer TOKEN``."""
    from controller.accounts.admins import issue_token

    with command_session(data_dir, database_url) as session:
        value = issue_token(session, username, SystemClock().now())
    click.echo(value)


@admin.command("disable")
@click.option("--username", required=True, help="the admin's login name")
@data_dir_option
@database_url_option
def disable(username: str, data_dir: Path | None, database_url: str | None) -> None:
    """Disable an admin: sessions end and the API token stops working at once."""
    from controller.accounts.admins import disable_admin

    with command_session(data_dir, database_url) as session:
        disable_admin(session, username, SystemClock().now())
    click.echo(f"已停用管理员 {username}")


@admin.command("list")
@data_dir_option
@database_url_option
def list_(data_dir: Path | None, database_url: str | None) -> None:
    """Every admin as a JSON line."""
    from sqlalchemy import select

    from controller.db.models import AdminUser

    with command_session(data_dir, database_url) as session:
        for user in session.scalars(select(AdminUser).order_by(AdminUser.username)):
            click.echo(
                json.dumps(
                    {
                        "username": user.username,
                        "role": user.role,
                        "region": user.region_prefix,
                        "has_token": user.token_hash is not None,
                        "disabled": user.disabled_at is not None,
                    }
                )
            )


@click.group()
def regions() -> None:
    """The region tree (province → city → county → township)."""


@regions.command("load")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="a CSV with code,level,name,parent (e.g. official township names); default: the "
    "shipped provinces, cities and counties",
)
@data_dir_option
@database_url_option
def load(path: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """Load the region tree; townships the system knows by code get placeholder names."""
    from controller.records.region_tree import (
        SHIPPED,
        load_regions,
        read_entries,
        township_placeholders,
    )

    with command_session(data_dir, database_url) as session:
        added, renamed = load_regions(session, read_entries(path or SHIPPED))
        placeholders, _ = load_regions(session, township_placeholders(session))
    click.echo(
        f"地区树：新增 {added} 个、更名 {renamed} 个；按代码登记乡镇 {placeholders} 个"
        "（名称未知，显示为“乡镇 代码”）"
    )


@click.group()
def dataset() -> None:
    """Data sets of approved records for the level above (signed, encrypted)."""


def _pki(data_dir: Path | None, database_url: str | None, now: datetime) -> ControllerPki:
    from controller.devices.pki_store import ensure_controller_pki

    settings = settings_for(data_dir, database_url)
    return ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now)


@dataset.command("keys")
@click.option("--source", required=True, help="who we are, e.g. 泰山区 or 370902")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="the keys file to write (JSON)",
)
@data_dir_option
@database_url_option
def keys(source: str, out: Path, data_dir: Path | None, database_url: str | None) -> None:
    """Write this controller's public keys for the levels next to it (no secret in it)."""
    from controller.records.datasets import keys_document

    pki = _pki(data_dir, database_url, SystemClock().now())
    document = keys_document(source, pki.licence_key, pki.upload_keys[pki.newest_upload_version])
    out.write_text(json.dumps(document, ensure_ascii=False, indent=1), encoding="utf-8")
    click.echo(f"公钥已写入 {out}；交给上级（接收本级数据集）和下级（加密给本级）")


@dataset.command("export")
@click.option("--area", required=True, help="region prefix whose approved records go up")
@click.option(
    "--level",
    required=True,
    type=click.Choice(["county", "city", "province"]),
    help="our level",
)
@click.option("--source", required=True, help="who we are, as the level above will see it")
@click.option(
    "--to",
    "to_keys",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="the upper level's keys file (from its `dataset keys`)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="the dataset file to write",
)
@data_dir_option
@database_url_option
def export(
    area: str,
    level: str,
    source: str,
    to_keys: Path,
    out: Path,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Export the approved records of an area, signed by us and encrypted to the level above."""
    import os

    from controller.records.datasets import export_dataset, read_keys

    now = SystemClock().now()
    pki = _pki(data_dir, database_url, now)
    recipient = read_keys(to_keys)
    with command_session(data_dir, database_url) as session:
        blob, count = export_dataset(
            session,
            area=area,
            level=level,
            source=source,
            signer=pki.licence_key,
            recipient_keys=recipient,
            now=now,
        )
    # Written beside, synced, then renamed: a crash leaves the old file or the whole new one.
    partial = out.with_name(out.name + ".partial")
    with partial.open("wb") as fh:
        fh.write(blob)
        fh.flush()
        os.fsync(fh.fileno())
    partial.replace(out)
    click.echo(
        f"已导出 {count} 条已通过记录到 {out}（已签名并加密给 {recipient.get('source', '上级')}）"
    )


@dataset.command("import")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help="the dataset file received from the level below",
)
@click.option(
    "--trust",
    "trusted",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    multiple=True,
    required=True,
    help="a lower level's keys file whose signature we accept (repeatable)",
)
@data_dir_option
@database_url_option
def import_(
    path: Path, trusted: tuple[Path, ...], data_dir: Path | None, database_url: str | None
) -> None:
    """Verify, decrypt and import a data set from the level below; importing again changes
    nothing."""
    from rich.progress import Progress

    from controller.records.datasets import import_dataset, read_keys

    now = SystemClock().now()
    pki = _pki(data_dir, database_url, now)
    signers = [read_keys(p)["signing_public"] for p in trusted]
    with Progress(transient=True) as bar, command_session(data_dir, database_url) as session:
        task = bar.add_task("导入 importing", total=None)
        result = import_dataset(
            session,
            path.read_bytes(),
            trusted_signers=signers,
            own_keys=dict(pki.upload_keys),
            now=now,
            progress=lambda n: bar.advance(task, n),
        )
    if result.already_imported:
        click.echo(f"数据集 {result.dataset_id[:12]} 已导入过，未作任何改动")
    else:
        click.echo(
            f"已导入数据集 {result.dataset_id[:12]}（{result.source}，地区 {result.area}）："
            f"新增 {result.added} 条，已有 {result.unchanged} 条"
        )
    click.echo(
        json.dumps(
            {
                "dataset_id": result.dataset_id,
                "added": result.added,
                "unchanged": result.unchanged,
                "already_imported": result.already_imported,
            }
        )
    )
