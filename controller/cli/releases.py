"""``muster controller release ...`` and ``muster controller rollout ...``: sign and store
software releases, roll them out to a region in waves, pause, resume, abort and watch them."""

from __future__ import annotations

import json
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
from muster.errors import ConfigError

__all__ = ["release", "rollout"]


def _pki_dir(data_dir: Path | None, database_url: str | None) -> Path:
    return settings_for(data_dir, database_url).data_dir / "pki"


@click.group()
def release() -> None:
    """Software releases: build (sign with the release key), add (verify and store), list."""


@release.command("build")
@click.option("--version", "version", required=True, help="the release's version, e.g. 0.2.0")
@click.option(
    "--profile", "profiles", multiple=True, required=True, help="device model (repeatable)"
)
@click.option("--minimum-version", required=True, help="lowest version that may update to it")
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="the release file to write",
)
@click.argument(
    "parts", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, dir_okay=False)
)
@data_dir_option
@database_url_option
def build(
    version: str,
    profiles: tuple[str, ...],
    minimum_version: str,
    output: Path,
    parts: tuple[Path, ...],
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Sign PARTS (the wheels of a release) with this centre's release key into one artifact."""
    from controller.releases.keys import load_release_keys
    from muster.release_artifacts import build_artifact

    try:
        manifest = build_artifact(
            output,
            version=version,
            profiles=profiles,
            minimum_version=minimum_version,
            parts=parts,
            key=load_release_keys(_pki_dir(data_dir, database_url)).signing.key,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"已生成发布包 {output}：版本 {manifest.version}，{len(manifest.parts)} 个部件")


@release.command("add")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@data_dir_option
@database_url_option
def add(file: Path, data_dir: Path | None, database_url: str | None) -> None:
    """Verify the release artifact FILE against the release keys and store it."""
    from controller.releases.keys import load_release_keys
    from controller.releases.store import add_release

    trusted = load_release_keys(_pki_dir(data_dir, database_url)).trusted()
    with command_session(data_dir, database_url) as session:
        stored = add_release(
            session,
            settings_for(data_dir, database_url).data_dir,
            file,
            trusted,
            now=SystemClock().now(),
        )
    m = stored.manifest
    click.echo(
        f"已保存版本 {m.version}（适用型号 {', '.join(m.profiles)}，最低版本 {m.minimum_version}，"
        f"{len(m.parts)} 个部件，共 {m.total_size} 字节）"
    )


@release.command("list")
@data_dir_option
@database_url_option
def list_(data_dir: Path | None, database_url: str | None) -> None:
    """The stored releases, newest first."""
    from sqlalchemy import select

    from controller.db.models import Release
    from muster.releases import parse_version

    with command_session(data_dir, database_url) as session:
        rows = sorted(
            session.scalars(select(Release)), key=lambda r: parse_version(r.version), reverse=True
        )
        for r in rows:
            click.echo(f"{r.version}\t{','.join(r.profiles)}\t>= {r.minimum_version}\t{r.key_id}")


@release.command("rotate-key")
@data_dir_option
@database_url_option
def rotate_key(data_dir: Path | None, database_url: str | None) -> None:
    """A new release key, endorsed by the current one; devices learn it with their next offer."""
    from controller.releases.keys import rotate_release_key

    entry = rotate_release_key(_pki_dir(data_dir, database_url))
    click.echo(
        f"发布密钥已轮换为第 {entry.version} 版 ({entry.key_id})，由 {entry.endorsed_by} 背书"
    )


def _waves(text: str) -> list[float]:
    try:
        return [float(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: 逗号分隔的百分比，如 1,10,100") from None


@click.group()
def rollout() -> None:
    """Roll a stored release out to a region in waves; pause, resume, abort, status."""


@rollout.command("create")
@click.option("--version", "version", required=True, help="the release to roll out, e.g. 0.2.0")
@click.option("--region", default="", help="region code prefix (37, 3709, 370902 ...); '' for all")
@click.option("--profile", "profiles", multiple=True, help="device models (default: the release's)")
@click.option("--waves", default="1,10,100", show_default=True, help="cumulative percentages")
@click.option(
    "--soak",
    "soak_s",
    type=click.IntRange(min=0),
    default=3600,
    show_default=True,
    help="seconds a wave's devices must stay healthy before the next wave opens",
)
@click.option(
    "--health-window",
    "health_window_s",
    type=click.IntRange(min=1),
    default=900,
    show_default=True,
    help="seconds a device's new version has to report healthy",
)
@click.option(
    "--failure-threshold",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.1,
    show_default=True,
    help="share of a wave's devices failing that pauses the rollout",
)
@click.option(
    "--force-working-hours",
    "ignore_working_hours",
    is_flag=True,
    help="update devices inside their region's working hours too (default: they wait)",
)
@data_dir_option
@database_url_option
def create(
    version: str,
    region: str,
    profiles: tuple[str, ...],
    waves: str,
    soak_s: int,
    health_window_s: int,
    failure_threshold: float,
    ignore_working_hours: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Start rolling VERSION out."""
    from controller.releases.rollouts import create_rollout, rollout_status

    with command_session(data_dir, database_url) as session:
        created = create_rollout(
            session,
            version=version,
            region_prefix=region,
            profiles=list(profiles),
            waves=_waves(waves),
            soak_s=soak_s,
            health_window_s=health_window_s,
            failure_threshold=failure_threshold,
            now=SystemClock().now(),
            ignore_working_hours=ignore_working_hours,
        )
        status = rollout_status(session, created.id)
    sizes = "、".join(str(w.devices) for w in status.waves)
    click.echo(f"已创建发布计划 #{status.id}：版本 {version}，各波设备数 {sizes}")


def _change(action: str, rollout_id: int, reason: str, options: dict[str, object]) -> None:
    from controller.releases import rollouts

    now = SystemClock().now()
    with command_session(options["data_dir"], options["database_url"]) as session:  # type: ignore[arg-type]
        if action == "pause":
            r = rollouts.pause_rollout(session, rollout_id, reason or "管理员暂停", now)
        elif action == "resume":
            r = rollouts.resume_rollout(session, rollout_id, now)
        else:
            r = rollouts.abort_rollout(session, rollout_id, reason or "管理员中止", now)
        click.echo(f"发布计划 #{r.id} 现为 {r.state}")


for _action, _help in (
    ("pause", "Stop offering the release; devices mid-update finish or roll back by themselves."),
    ("resume", "Offer it again; the failures that paused it no longer count."),
    ("abort", "End the rollout; devices already updated keep the new version."),
):

    def _make(action: str, help_text: str) -> None:
        @rollout.command(action, help=help_text)
        @click.argument("rollout_id", type=int)
        @click.option("--reason", default="", help="why (kept with the rollout)")
        @data_dir_option
        @database_url_option
        def command(rollout_id: int, reason: str, **options: object) -> None:
            _change(action, rollout_id, reason, options)

    _make(_action, _help)


@rollout.command("retry")
@click.argument("rollout_id", type=int)
@click.argument("device_id")
@click.option("--by", default="cli", help="who retries (kept in the device's history)")
@data_dir_option
@database_url_option
def retry(
    rollout_id: int, device_id: str, by: str, data_dir: Path | None, database_url: str | None
) -> None:
    """Offer DEVICE_ID its failed update of ROLLOUT_ID again, as its next attempt."""
    from controller.releases.rollouts import retry_device

    with command_session(data_dir, database_url) as session:
        entry = retry_device(
            session, rollout_id, device_id[:40], by=by[:40], now=SystemClock().now()
        )
        click.echo(f"设备 {device_id} 将在发布计划 #{rollout_id} 中第 {entry.attempts} 次尝试更新")


@rollout.command("hours")
@click.argument("region")
@click.argument("window", required=False)
@click.option("--utc-offset", type=float, default=8.0, show_default=True, help="hours from UTC")
@click.option("--clear", is_flag=True, help="remove the region's working hours")
@data_dir_option
@database_url_option
def hours(
    region: str,
    window: str | None,
    utc_offset: float,
    clear: bool,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Set REGION's working hours (WINDOW such as 08:00-18:00, local time): its devices are
    not updated inside them unless a rollout is forced. REGION is a code prefix; '' for all."""
    from controller.releases.update_windows import set_working_hours
    from controller.releases.working_hours import parse_window
    from muster.releases import ReleaseError

    with command_session(data_dir, database_url) as session:
        # Inside the session: a refusal is reported as the other commands' are.
        if clear == (window is not None):
            raise ReleaseError(
                "bad_window",
                "请给出工作时间 (如 08:00-18:00) 或 --clear，二者选一 (give WINDOW or --clear)",
            )
        parsed = None if clear else parse_window(region, window or "", utc_offset)
        set_working_hours(session, parsed, region)
    click.echo(
        f"地区 {region or '全国'} 的工作时间已清除"
        if parsed is None
        else f"地区 {region or '全国'} 的工作时间为 {parsed.text()}（UTC{utc_offset:+g}），其间不更新"
    )


@rollout.command("status")
@click.argument("rollout_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
@data_dir_option
@database_url_option
def status(rollout_id: int, as_json: bool, data_dir: Path | None, database_url: str | None) -> None:
    """Each wave's devices by step, and every failure with its reason."""
    from controller.releases.rollouts import rollout_status

    with command_session(data_dir, database_url) as session:
        s = rollout_status(session, rollout_id)
    if as_json:
        click.echo(json.dumps(asdict(s), ensure_ascii=False))
        return
    click.echo(f"发布计划 #{s.id} 版本 {s.version} 地区 {s.region_prefix or '全国'}: {s.state}")
    if s.state_reason:
        click.echo(f"  原因: {s.state_reason}")
    for w in s.waves:
        mark = "▶" if w.index == s.current_wave and s.state in ("running", "paused") else " "
        states = ", ".join(f"{k} {v}" for k, v in sorted(w.states.items())) or "-"
        click.echo(f" {mark} 第 {w.index + 1} 波 ({w.percent:g} %): {w.devices} 台 — {states}")
    for device_id, state, reason in s.failures:
        click.echo(f"  失败 {device_id}: {state} {reason}")
