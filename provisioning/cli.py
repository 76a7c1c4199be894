"""``muster provision ...``: the technician's and the enrolment admin's commands."""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from muster.errors import MusterError

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
def provision() -> None:
    """Enrolment codes, device enrolment and self-test."""


@provision.group()
def code() -> None:
    """Enrolment codes (run on the controller host)."""


@code.command("create")
@click.option("--township", required=True, help="12-digit township code, e.g. 370902001000")
@click.option("--profile", required=True, help="firmware profile the device gets, e.g. fixed-kiosk")
@click.option(
    "--expires",
    "validity",
    default="7d",
    show_default=True,
    help="how long the code stays valid: 30m, 12h, 7d",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="controller data dir (default var/controller)",
)
@click.option("--database-url", help="controller database (default: SQLite in the data dir)")
@click.option("--created-by", default="cli", show_default=True)
@click.option(
    "--json", "as_json", is_flag=True, help="print one JSON object instead of text and QR code"
)
@click.option(
    "--qr-png", type=click.Path(path_type=Path), help="also write the QR code to this PNG file"
)
def code_create(
    township: str,
    profile: str,
    validity: str,
    data_dir: Path | None,
    database_url: str | None,
    created_by: str,
    as_json: bool,
    qr_png: Path | None,
) -> None:
    """Create a single-use enrolment code for one township and profile."""
    import segno

    from controller.db import make_engine, migrate, session_factory
    from controller.enrollment import create_enrollment_code
    from controller.settings import ControllerSettings
    from muster.profiles import load_profile
    from muster.regions import parse_township

    try:
        region = parse_township(township)
        load_profile(profile)
        valid_for = parse_validity(validity)
        settings = ControllerSettings(
            **{k: v for k, v in {"data_dir": data_dir, "database_url": database_url}.items() if v}  # type: ignore[arg-type]
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.resolved_database_url()
        migrate(url)
        engine = make_engine(url)
        now = datetime.now(UTC)
        text = create_enrollment_code(
            session_factory(engine),
            township_code=region.code,
            profile=profile,
            valid_for=valid_for,
            created_by=created_by,
            now=now,
        )
        engine.dispose()
    except MusterError as exc:
        click.echo(f"错误 (error): {exc}", err=True)
        sys.exit(2)
    expires = (now + valid_for).strftime("%Y-%m-%d %H:%M UTC")
    qr = segno.make(f"MUSTER-ENROL:{text}", error="m")
    if qr_png is not None:
        qr.save(str(qr_png), scale=8)
    if as_json:
        click.echo(
            json.dumps(
                {"code": text, "township": region.code, "profile": profile, "expires": expires}
            )
        )
        return
    click.echo(f"注册码 enrolment code: {text}")
    click.echo(
        f"乡镇 township: {region.code}   型号 profile: {profile}   有效期至 expires: {expires}"
    )
    click.echo(
        "只能使用一次 (single use)。技术人员在设备上运行: muster provision enroll --controller HOST:PORT --code CODE"
    )
    qr.terminal(compact=True)


@provision.command("enroll")
@click.option("--controller", required=True, help="controller enrolment endpoint HOST:PORT")
@click.option("--code", "enrol_code", required=True, help="enrolment code from the centre")
@click.option(
    "--ca-cert",
    required=True,
    type=click.Path(path_type=Path, exists=True),
    help="controller CA certificate",
)
@click.option(
    "--state-dir", type=click.Path(path_type=Path), default=Path("var/edge"), show_default=True
)
@click.option(
    "--simulated", is_flag=True, help="derive a simulated fingerprint (simulator profile)"
)
def enroll_command(
    controller: str, enrol_code: str, ca_cert: Path, state_dir: Path, simulated: bool
) -> None:
    """Enrol this device: key generated here, certificate and licence from the controller."""
    from edge.identity import IdentityStore
    from provisioning.enroll import enroll

    if IdentityStore(state_dir).is_enrolled():
        click.echo(
            f"本机已注册 (already enrolled): {state_dir}; 更换设备请使用新的状态目录", err=True
        )
        sys.exit(2)
    try:
        result = enroll(
            controller=controller,
            code=enrol_code,
            ca_cert=ca_cert,
            state_dir=state_dir,
            simulated_seed=str(state_dir.resolve()) if simulated else None,
        )
    except MusterError as exc:
        click.echo(f"注册失败 (enrolment failed): {exc}", err=True)
        sys.exit(2)
    click.echo(
        f"注册成功 enrolled: device {result.device_id}, township {result.township_code}, profile {result.profile}"
    )
