"""``muster provision ...`` on the controller host: enrolment codes, revocation and the CRL,
replacement of a broken device, rotation of the CA and the licence key. The device's commands
of the same group live in :mod:`provisioning.cli`.

Over 400 lines because it is one command group (codes, bulk codes, revoke, CRL, replace, rotate)
whose options and messages are shared; the work itself is in ``controller.devices``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from controller.cli.options import data_dir_option, database_url_option, settings_for
from controller.db import open_database
from muster.clock import SystemClock
from muster.errors import MusterError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from controller.devices.pki_store import ControllerPki
    from controller.settings import ControllerSettings

# gRPC's C core writes its own lines to stderr (a failed handshake, a closed socket); the
# technician reads our message about it instead. Read when grpc is first imported: before.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

_DURATION = re.compile(r"^(\d+)\s*([mhd])$")


def parse_validity(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d``."""
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter("use a number and a unit: 30m, 12h or 7d")
    value, unit = int(match.group(1)), match.group(2)
    return {"m": timedelta(minutes=value), "h": timedelta(hours=value), "d": timedelta(days=value)}[
        unit
    ]


@click.group()
def code() -> None:
    """Enrolment codes (run on the controller host)."""


@code.command("create")
@click.option("--township", help="12-digit township code, e.g. 370902001000")
@click.option("--profile", help="firmware profile the device gets, e.g. fixed-kiosk")
@click.option(
    "--bulk",
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV of 'township code,profile' rows, one per device: writes a printable PDF sheet of "
    "QR codes and a CSV of the codes (see --out)",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="with --bulk: base name of the PDF and CSV written (default: beside the input, "
    "NAME-codes.pdf and NAME-codes.csv)",
)
@click.option(
    "--expires",
    "validity",
    default="7d",
    show_default=True,
    help="how long the code stays valid: 30m, 12h, 7d",
)
@data_dir_option
@database_url_option
@click.option(
    "--created-by",
    default="cli",
    show_default=True,
    help="who creates the code (kept with it, shown in the codes page)",
)
@click.option(
    "--hostname",
    help="the controller's name or IP devices reach it by, put in the QR code (as given to "
    "muster controller run; default: its settings)",
)
@click.option(
    "--enrol-port",
    type=click.IntRange(1, 65535),
    help="the controller's enrolment port, put in the QR code (as given to muster controller "
    "run; default: its settings, 7443)",
)
@click.option(
    "--json", "as_json", is_flag=True, help="print one JSON object instead of text and QR code"
)
@click.option(
    "--qr-png", type=click.Path(path_type=Path), help="also write the QR code to this PNG file"
)
def code_create(
    township: str | None,
    profile: str | None,
    bulk: Path | None,
    out: Path | None,
    validity: str,
    data_dir: Path | None,
    database_url: str | None,
    created_by: str,
    hostname: str | None,
    enrol_port: int | None,
    as_json: bool,
    qr_png: Path | None,
) -> None:
    """Create a single-use enrolment code for one township and profile (or one per row of
    --bulk). Run on the controller host, against the controller's data dir: the QR code
    carries the controller's address, enrolment port and CA fingerprint from there."""
    import segno

    from controller.devices.enrolment import create_enrollment_code, enrolment_ticket
    from muster.profiles import load_profile
    from muster.regions import parse_township

    if bulk is not None:
        if township or profile or qr_png:
            raise click.UsageError("--bulk 与 --township/--profile/--qr-png 不能同时使用")
        _bulk_codes(
            bulk, out, validity, data_dir, database_url, created_by, as_json, hostname, enrol_port
        )
        return
    if not township or not profile:
        raise click.UsageError("请给出 --township 和 --profile（或用 --bulk 批量创建）")
    try:
        region = parse_township(township)
        load_profile(profile)
        valid_for = parse_validity(validity)
        now = SystemClock().now()
        settings = _controller_settings(data_dir, database_url, hostname, enrol_port)
        with open_database(settings) as sessions:
            text = create_enrollment_code(
                sessions,
                township_code=region.code,
                profile=profile,
                valid_for=valid_for,
                created_by=created_by,
                now=now,
            )
        ticket = enrolment_ticket(
            text,
            host=settings.public_hostnames[0],
            port=settings.enrol_port,
            ca_cert_pem=(settings.data_dir / "pki" / "ca.crt").read_bytes(),
        )
    except MusterError as exc:
        click.echo(f"错误 (error): {exc}", err=True)
        sys.exit(2)
    expires = (now + valid_for).strftime("%Y-%m-%d %H:%M UTC")
    qr = segno.make(ticket.payload(), error="m")
    if qr_png is not None:
        qr.save(str(qr_png), scale=8)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "code": text,
                    "township": region.code,
                    "profile": profile,
                    "expires": expires,
                    "qr": ticket.payload(),
                }
            )
        )
        return
    click.echo(f"注册码 enrolment code: {text}")
    click.echo(
        f"乡镇 township: {region.code}   型号 profile: {profile}   有效期至 expires: {expires}"
    )
    click.echo(
        "只能使用一次 (single use)。技术人员把中心的 CA 证书 "
        f"{settings.data_dir / 'pki' / 'ca.crt'} 复制到设备上，然后运行:\n"
        "  muster provision enroll --qr-image 二维码照片.png --ca-cert ca.crt\n"
        f"或 muster provision enroll --controller {ticket.controller} --code {text} "
        "--ca-cert ca.crt"
    )
    qr.terminal(compact=True)


def _controller_settings(
    data_dir: Path | None,
    database_url: str | None,
    hostname: str | None = None,
    enrol_port: int | None = None,
) -> ControllerSettings:
    """The controller's settings, refusing a data dir without the controller's keys: codes made
    in a fresh empty database are unknown to the real controller, and their QR code would name
    a CA no device trusts."""
    from muster.enrolment_codes import ca_fingerprint, controller_host
    from muster.errors import ConfigError

    settings = settings_for(data_dir, database_url)
    if hostname:
        settings = settings.model_copy(update={"public_hostnames": [hostname]})
    # The QR code's address is checked before any code is made, so a bad one changes nothing.
    controller_host(settings.public_hostnames[0])
    if enrol_port is not None:
        settings = settings.model_copy(update={"enrol_port": enrol_port})
    ca = settings.data_dir / "pki" / "ca.crt"
    if not ca.exists() or not (settings.data_dir / "pki" / "ca.key").exists():
        given = "--data-dir" if data_dir is not None else "默认位置（未给 --data-dir）"
        raise ConfigError(
            f"在 {settings.data_dir.resolve()}（{given}）没有找到中心的密钥 pki/ca.crt 和 "
            "pki/ca.key：这不是运行中的中心的数据目录，在这里创建的注册码中心不认识。"
            "请用 --data-dir 指向中心的数据目录（与 muster controller run 相同），"
            "或设置环境变量 MUSTER_CONTROLLER_DATA_DIR；什么也没有创建"
        )
    ca_fingerprint(ca.read_bytes())  # a damaged certificate is told now, before any code exists
    return settings


def _bulk_codes(
    bulk: Path,
    out: Path | None,
    validity: str,
    data_dir: Path | None,
    database_url: str | None,
    created_by: str,
    as_json: bool,
    hostname: str | None,
    enrol_port: int | None,
) -> None:
    from controller.devices.code_sheets import IssuedCode, codes_csv, codes_pdf, parse_bulk_csv
    from controller.devices.enrolment import create_enrollment_codes, enrolment_ticket
    from muster.crypto.keys import write_public_file

    base = out if out is not None else bulk.with_name(f"{bulk.stem}-codes")
    pdf_path, csv_path = base.with_suffix(".pdf"), base.with_suffix(".csv")
    try:
        valid_for = parse_validity(validity)
        try:
            data = bulk.read_bytes()
        except OSError as exc:
            raise click.BadParameter(
                f"无法读取 {bulk}：{exc.strerror}", param_hint="--bulk"
            ) from None
        rows = parse_bulk_csv(data)
        settings = _controller_settings(data_dir, database_url, hostname, enrol_port)
        ca_pem = (settings.data_dir / "pki" / "ca.crt").read_bytes()
        now = SystemClock().now()
        with open_database(settings) as sessions:
            texts = create_enrollment_codes(
                sessions,
                [(r.township, r.profile) for r in rows],
                valid_for=valid_for,
                created_by=created_by,
                now=now,
            )
        issued = [
            IssuedCode(
                row,
                enrolment_ticket(
                    text,
                    host=settings.public_hostnames[0],
                    port=settings.enrol_port,
                    ca_cert_pem=ca_pem,
                ),
                now + valid_for,
            )
            for row, text in zip(rows, texts, strict=True)
        ]
        write_public_file(csv_path, codes_csv(issued))
        write_public_file(pdf_path, codes_pdf(issued, ca_cert_name="ca.crt"))
    except MusterError as exc:
        click.echo(f"错误 (error): {exc}", err=True)
        sys.exit(2)
    if as_json:
        click.echo(json.dumps({"codes": len(issued), "pdf": str(pdf_path), "csv": str(csv_path)}))
        return
    click.echo(f"已创建 {len(issued)} 个注册码 (codes created)：")
    click.echo(f"  打印用 PDF: {pdf_path}")
    click.echo(f"  注册码清单 CSV: {csv_path}")
    click.echo("注册码只在这两个文件中出现（中心只保存其摘要）：请妥善保管，用后销毁。")


def _controller_pki(settings: ControllerSettings, now: datetime) -> ControllerPki:
    from controller.devices.pki_store import ensure_controller_pki

    return ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now)


@contextmanager
def _on_controller(
    data_dir: Path | None, database_url: str | None
) -> Iterator[tuple[ControllerSettings, sessionmaker[Session]]]:
    """(settings, sessions) for commands run on the controller host."""

    settings = settings_for(data_dir, database_url)
    with open_database(settings) as sessions:
        yield settings, sessions


def _fail(exc: Exception) -> None:
    click.echo(f"错误 (error): {exc}", err=True)
    sys.exit(2)


@click.command("revoke")
@click.argument("device_id")
@click.option("--reason", required=True, help="why, in a few words (kept with the device)")
@data_dir_option
@database_url_option
@click.option("--by", default="cli", show_default=True, help="who revokes (kept in the history)")
@click.option(
    "--broker-pid-file",
    type=click.Path(path_type=Path),
    help="a local Mosquitto's pid file: send it SIGHUP so it re-reads the CRL now",
)
def revoke_command(
    device_id: str,
    reason: str,
    data_dir: Path | None,
    database_url: str | None,
    by: str,
    broker_pid_file: Path | None,
) -> None:
    """Revoke a device (run on the controller host). Its uploads are refused at once, the
    broker refuses its certificate once it has re-read pki/crl.pem, and the device stops
    collecting at its next contact."""
    from controller.devices.revocation import revoke_device, signal_broker, write_crl

    now = SystemClock().now()
    try:
        with _on_controller(data_dir, database_url) as (settings, sessions):
            revoked = revoke_device(sessions, device_id, reason=reason, by=by, now=now)
            crl = write_crl(sessions, _controller_pki(settings, now), now=now)
    except MusterError as exc:
        _fail(exc)
        return
    click.echo(f"已吊销 revoked: {revoked.device_id}（乡镇 {revoked.township_code}）：{reason}")
    click.echo(f"证书吊销列表 CRL: {crl}")
    if signal_broker(broker_pid_file):
        click.echo("已通知消息服务重新读取 CRL (broker signalled)")
    else:
        click.echo(
            "消息服务在重新读取 CRL 后拒绝该设备：运行中的中心（--broker-pid-file）会自动通知，"
            "或手动执行 kill -HUP <mosquitto pid>"
        )


@click.command("crl")
@data_dir_option
@database_url_option
def crl_command(data_dir: Path | None, database_url: str | None) -> None:
    """Write pki/crl.pem now (for a broker's `crlfile`); the controller keeps it current."""
    from controller.devices.revocation import write_crl

    now = SystemClock().now()
    try:
        with _on_controller(data_dir, database_url) as (settings, sessions):
            path = write_crl(sessions, _controller_pki(settings, now), now=now)
    except MusterError as exc:
        _fail(exc)
        return
    click.echo(str(path))


@click.command("replace")
@click.argument("old_device")
@click.argument("new_device")
@click.option(
    "--reason",
    default="设备损坏，已更换",
    show_default=True,
    help="why, in a few words (kept with both devices)",
)
@data_dir_option
@database_url_option
@click.option("--by", default="cli", show_default=True, help="who records the replacement")
def replace_command(
    old_device: str,
    new_device: str,
    reason: str,
    data_dir: Path | None,
    database_url: str | None,
    by: str,
) -> None:
    """Record that NEW_DEVICE replaces OLD_DEVICE (same township): OLD is revoked, and NEW may
    upload OLD's remaining sealed records (see export-outbox and import-outbox)."""
    from controller.devices.replacement import register_succession
    from controller.devices.revocation import write_crl

    now = SystemClock().now()
    try:
        with _on_controller(data_dir, database_url) as (settings, sessions):
            succession = register_succession(
                sessions, old_device, new_device, reason=reason, by=by, now=now
            )
            write_crl(sessions, _controller_pki(settings, now), now=now)
    except MusterError as exc:
        _fail(exc)
        return
    click.echo(
        f"{succession.successor_id} 接替 {succession.predecessor_id}"
        f"（乡镇 {succession.township_code}）"
        + ("，旧设备已吊销" if succession.revoked_now else "")
    )
    click.echo(
        "下一步 next: 在能读取旧设备磁盘的机器上运行 muster provision export-outbox "
        "--state-dir 旧状态目录 --out old.outbox；在新设备上运行 muster provision import-outbox old.outbox"
    )


@click.group()
def rotate() -> None:
    """Rotate the controller's CA or licence-authority key (run on the controller host)."""


@rotate.command("ca")
@data_dir_option
@click.option(
    "--activate",
    is_flag=True,
    help="second step: issue from the new CA (after devices have picked up the bundle)",
)
def rotate_ca(data_dir: Path | None, activate: bool) -> None:
    """Two steps: first a new CA joins the trust bundle (devices receive it at their next
    contact); then, with --activate, it becomes the issuing CA. Restart the controller and
    give brokers pki/ca-bundle.crt as their cafile after each step."""
    from controller.devices.pki_store import (
        activate_next_ca,
        begin_ca_rotation,
        ensure_controller_pki,
    )
    from controller.settings import ControllerSettings

    settings = ControllerSettings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    now = SystemClock().now()
    try:
        pki = ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now)
        cert = activate_next_ca(pki) if activate else begin_ca_rotation(pki, now=now)
        pki = ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now)
    except MusterError as exc:
        _fail(exc)
        return
    step = (
        "已启用新 CA (now issuing from)" if activate else "新 CA 已加入信任包 (added to the bundle)"
    )
    click.echo(f"{step}: {cert.subject.rfc4514_string()} serial {cert.serial_number:x}")
    click.echo(f"信任包 trust bundle: {pki.trust_bundle_path}（{len(pki.authorities)} 个 CA）")
    if not activate:
        click.echo(
            "重启中心后，设备在下一次联系中心时取得信任包；全部设备联系过后运行 "
            "muster provision rotate ca --activate"
        )


@rotate.command("licence-key")
@data_dir_option
def rotate_licence_key_command(data_dir: Path | None) -> None:
    """A new licence-authority key. Licences already issued stay valid; devices take the new
    public key with their next renewal. Restart the controller afterwards."""
    from controller.devices.pki_store import ensure_controller_pki, rotate_licence_key
    from controller.settings import ControllerSettings

    settings = ControllerSettings(**({"data_dir": data_dir} if data_dir else {}))  # type: ignore[arg-type]
    now = SystemClock().now()
    try:
        pki = ensure_controller_pki(settings.data_dir, settings.public_hostnames, now=now)
        old = rotate_licence_key(pki, now=now)
    except MusterError as exc:
        _fail(exc)
        return
    click.echo(f"新的授权签发密钥已生成；旧密钥保存在 {old}（不再签发）")
