"""``muster provision ...`` on the device: the technician's enrol, self-test and outbox
transfer. The centre's commands of the same group (codes, revocation, replacement, key
rotation) live in :mod:`controller.cli.provision`; ``muster provision`` joins both lazily
(``muster/cli.py``), so a device never loads the controller."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, cast

import click

from muster.clock import SystemClock
from muster.errors import MusterError

if TYPE_CHECKING:
    from muster.enrolment_codes import EnrolmentTicket
    from muster.profiles import FirmwareProfile

# gRPC's C core writes its own lines to stderr (a failed handshake, a closed socket); the
# technician reads our message about it instead. Read when grpc is first imported: before.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")


@click.command("enroll")
@click.option(
    "--qr-image",
    type=click.Path(path_type=Path),
    help="photo or scan of the enrolment QR code: gives the controller, port, code and the "
    "CA certificate's fingerprint",
)
@click.option(
    "--qr-camera",
    is_flag=True,
    help="read the enrolment QR code with this device's camera (the --profile's camera)",
)
@click.option(
    "--controller",
    help="controller enrolment endpoint HOST:PORT (default port 7443; not needed with a QR code)",
)
@click.option(
    "--code",
    "enrol_code",
    help="enrolment code from the centre, e.g. K7QF-2M9D-XH4T-8PWC (any case, dashes optional)",
)
@click.option(
    "--township",
    help="the 12-digit township you are enrolling for; a code of another township is refused",
)
@click.option(
    "--ca-cert",
    required=True,
    type=click.Path(path_type=Path),
    help="the controller's CA certificate (its data dir's pki/ca.crt); checked against the QR "
    "code's fingerprint",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path("var/edge"),
    show_default=True,
    help="where this device keeps its identity, outbox and state",
)
@click.option(
    "--simulated", is_flag=True, help="derive a simulated fingerprint (simulator profile)"
)
@click.option(
    "--profile",
    "profile_path",
    help="this device's firmware profile (name or YAML): a code for another kind of device "
    "(fixed, portable ...) is refused; also the self-test's profile (default: the one granted)",
)
@click.option(
    "--scan-timeout",
    default=60.0,
    show_default=True,
    help="seconds to look for the QR code with --qr-camera",
)
@click.option("--no-selftest", is_flag=True, help="do not run the self-test after enrolling")
def enroll_command(
    qr_image: Path | None,
    qr_camera: bool,
    controller: str | None,
    enrol_code: str | None,
    township: str | None,
    ca_cert: Path,
    state_dir: Path,
    simulated: bool,
    profile_path: str | None,
    scan_timeout: float,
    no_selftest: bool,
) -> None:
    """Enrol this device: key generated here, certificate and licence from the controller,
    then the self-test. A refused code changes nothing on this device.

    \b
    With the QR code:  muster provision enroll --qr-image code.png --ca-cert ca.crt
    By hand:           muster provision enroll --controller HOST:7443 --code CODE --ca-cert ca.crt
    """
    from edge.enrolment import enroll
    from edge.identity import IdentityStore
    from muster.profiles import load_profile
    from muster.regions import parse_township

    if township is not None:
        try:
            township = parse_township(township).code
        except MusterError as exc:
            raise click.BadParameter(str(exc), param_hint="--township") from None
    profile: FirmwareProfile | None = None
    if profile_path is not None:
        try:
            profile = load_profile(profile_path)
        except MusterError as exc:
            raise click.BadParameter(str(exc), param_hint="--profile") from None

    if IdentityStore(state_dir).is_enrolled():
        click.echo(
            f"本机已注册 (already enrolled): {state_dir}; 更换设备请使用新的状态目录", err=True
        )
        sys.exit(2)
    ticket: EnrolmentTicket | None = None
    try:
        ticket = _scanned_ticket(qr_image, qr_camera, profile, scan_timeout)
        if ticket is not None:
            if controller is not None and controller != ticket.controller:
                click.echo(
                    f"注意：二维码中的中心地址是 {ticket.controller}，使用 --controller {controller}",
                    err=True,
                )
            if enrol_code is not None:
                raise click.UsageError("二维码已含注册码：不要同时给出 --code")
        elif controller is None or enrol_code is None:
            raise click.UsageError(
                "请给出 --qr-image 注册二维码图片（或 --qr-camera），"
                "或者同时给出 --controller HOST:PORT 和 --code CODE"
            )
        result = enroll(
            controller=controller or (ticket.controller if ticket else ""),
            code=ticket.code if ticket else (enrol_code or ""),
            ca_cert=ca_cert,
            state_dir=state_dir,
            simulated_seed=str(state_dir.resolve()) if simulated else None,
            expected_township=township or "",
            expected_profile_kind=profile.kind if profile is not None else "",
            ca_sha256=ticket.ca_sha256 if ticket else None,
        )
    except MusterError as exc:
        click.echo(f"注册失败 (enrolment failed): {exc}", err=True)
        sys.exit(2)
    click.echo(
        f"注册成功 enrolled: device {result.device_id}, township {result.township_code}, "
        f"profile {result.profile}"
    )
    if not no_selftest:
        failed = _selftest(state_dir, profile_path or result.profile, as_json=False, timeout=10.0)
        if failed:
            click.echo("注册已完成，但自检有未通过的项目，请按上表的修复建议处理。", err=True)


def _scanned_ticket(
    qr_image: Path | None, qr_camera: bool, profile: FirmwareProfile | None, timeout_s: float
) -> EnrolmentTicket | None:
    from provisioning.qr import read_qr_camera, read_qr_image

    if qr_image is not None and qr_camera:
        raise click.UsageError("--qr-image 和 --qr-camera 只能选一个")
    if qr_image is not None:
        return read_qr_image(qr_image)
    if not qr_camera:
        return None
    if profile is None or profile.camera.kind == "none":
        raise click.UsageError(
            "--qr-camera 需要 --profile 指明本机型号（其中的摄像头）；没有摄像头请用 --qr-image"
        )
    click.echo(f"请把注册二维码对准摄像头（{timeout_s:g} 秒内）…", err=True)
    return read_qr_camera(profile.camera, clock=SystemClock(), timeout_s=timeout_s)


def _fail(exc: Exception) -> None:
    click.echo(f"错误 (error): {exc}", err=True)
    sys.exit(2)


@click.command("export-outbox")
@click.option(
    "--state-dir",
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="the OLD device's state dir (its disk mounted here)",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="file to write")
def export_outbox_command(state_dir: Path, out: Path) -> None:
    """Export a replaced device's unacknowledged records, still sealed and signed."""
    from provisioning.outbox_transfer import export_outbox

    try:
        result = export_outbox(state_dir, out, now=SystemClock().now())
    except MusterError as exc:
        _fail(exc)
        return
    click.echo(f"已导出 exported: {result.records} 条待上传记录（设备 {result.device_id}）→ {out}")


@click.command("import-outbox")
@click.argument("export_file", type=click.Path(path_type=Path))
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path("var/edge"),
    show_default=True,
    help="this (new) device's state dir",
)
def import_outbox_command(export_file: Path, state_dir: Path) -> None:
    """Queue a predecessor's exported records for upload from this device. They stay sealed:
    this device cannot read them. The daemon may keep running meanwhile."""
    from provisioning.outbox_transfer import import_outbox

    try:
        result = import_outbox(export_file, state_dir, clock=SystemClock())
    except MusterError as exc:
        _fail(exc)
        return
    click.echo(
        f"已导入 imported: {result.added} 条（设备 {result.predecessor_id}），"
        f"{result.already_present} 条此前已导入；守护进程会随本机记录一起上传"
    )


def _selftest(
    state_dir: Path,
    profile_name: str | None,
    *,
    as_json: bool,
    timeout: float,
    brokers: Sequence[str] = (),
) -> bool:
    """Run and print the self-test; True when something failed. ``brokers``: the nodes the
    daemon is configured with (its ``--broker``), else ``MUSTER_EDGE_BROKERS`` as the daemon
    reads it, else what enrolment named."""
    from rich.console import Console
    from rich.table import Table

    from edge.identity import IdentityStore
    from muster.logs import configure_logging
    from muster.mqtt import split_broker_urls
    from muster.profiles import load_profile
    from provisioning.selftest import FAIL, PASS, run_selftest

    # The adapters log what the daemon would want to know (a camera lost, a reopen failed);
    # the self-test reports those itself, in the table, so only errors reach stderr.
    configure_logging("ERROR")
    store = IdentityStore(state_dir)
    try:
        name = profile_name or (store.enrolment().profile if store.is_enrolled() else "simulator")
        profile = load_profile(name)
    except MusterError as exc:
        _fail(exc)
        return True
    seed = str(state_dir.resolve()) if profile.kind == "simulator" else None
    err = Console(stderr=True)
    with err.status("自检中 self-test …") as status:
        checks = run_selftest(
            state_dir,
            profile,
            simulated_seed=seed,
            timeout_s=timeout,
            clock=SystemClock(),
            progress=lambda key: status.update(f"自检中 self-test: {key} …"),
            brokers=list(brokers)
            or cast(list[str], split_broker_urls(os.environ.get("MUSTER_EDGE_BROKERS", ""))),
        )
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"check": c.name, "verdict": c.verdict, "detail": c.detail, "fix": c.fix}
                    for c in checks
                ],
                ensure_ascii=False,
            )
        )
    else:
        table = Table(title=f"设备自检 self-test — {state_dir}")
        for column in ("项目 check", "结果 result", "情况 detail", "修复建议 fix"):
            table.add_column(column, overflow="fold")
        marks = {PASS: "[green]通过 ok[/]", FAIL: "[red]未通过 FAIL[/]"}
        for c in checks:
            table.add_row(c.name, marks.get(c.verdict, "[dim]跳过 skipped[/]"), c.detail, c.fix)
        Console(width=max(120, Console().width)).print(table)
    return any(c.verdict == FAIL for c in checks)


@click.command("selftest")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    default=Path("var/edge"),
    show_default=True,
    help="the device's state dir (as given to muster edge run)",
)
@click.option(
    "--profile", "profile_name", help="firmware profile YAML or name (default: the one granted)"
)
@click.option("--timeout", default=10.0, show_default=True, help="seconds per network check")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.option(
    "--broker",
    "brokers",
    multiple=True,
    help="a broker node the daemon is given (its --broker), once per node; default: "
    "MUSTER_EDGE_BROKERS, else the addresses from enrolment",
)
def selftest_command(
    state_dir: Path,
    profile_name: str | None,
    timeout: float,
    as_json: bool,
    brokers: tuple[str, ...],
) -> None:
    """Check licence, certificate, controller (gRPC), broker (MQTT), reader, camera, clock and
    disk; print a table with a fix for every failure. Exit status 1 when anything failed."""
    if _selftest(state_dir, profile_name, as_json=as_json, timeout=timeout, brokers=brokers):
        sys.exit(1)
