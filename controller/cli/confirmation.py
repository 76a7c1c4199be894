"""``muster controller confirmation ...``: the annual confirmation of pension receivers at the
county (S-20..S-23) — open a campaign, import the payment roll, plan the home visits, notice the
unconfirmed, stop and restore payments, record a death reported at a visit, draw a spot check,
write the weekly report."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session, sessionmaker

from controller.cli.options import (
    Refused,
    data_dir_option,
    database_url_option,
    operator_name,
    settings_for,
    tell_rejections,
)
from muster.clock import SystemClock
from muster.errors import ConfigError

__all__ = ["confirmation"]

F = TypeVar("F", bound=Callable[..., Any])


def _campaign_options(fn: F) -> F:
    for option in (
        data_dir_option,
        database_url_option,
        click.option(
            "--year", type=click.IntRange(2000, 2200), required=True, help="campaign year"
        ),
        click.option("--county", required=True, help="6-digit county code, e.g. 320723"),
        click.option("--by", "by", default=None, help="who does it (default: the login name)"),
    ):
        fn = option(fn)
    return fn


@contextmanager
def _sessions(options: dict[str, Any]) -> Iterator[sessionmaker[Session]]:
    from controller.db import open_database

    try:
        with open_database(settings_for(options.get("data_dir"), options.get("database_url"))) as s:
            yield s
    except ConfigError as exc:
        raise Refused(str(exc)) from exc


@contextmanager
def _campaign(options: dict[str, Any]) -> Iterator[tuple[Session, Any]]:
    from controller.confirmation.campaigns import find_campaign

    with _sessions(options) as sessions:
        try:
            with sessions.begin() as session:
                yield session, find_campaign(session, options["year"], options["county"])
        except ConfigError as exc:
            raise Refused(str(exc)) from exc


@click.group()
def confirmation() -> None:
    """Annual confirmation of pension receivers (年度确认)."""


@confirmation.group()
def campaign() -> None:
    """Open a year's campaign for a county."""


@campaign.command("create")
@_campaign_options
@click.option(
    "--phase",
    "phase_changes",
    multiple=True,
    metavar="NAME=YYYY-MM-DD:YYYY-MM-DD",
    help="move a phase (publicity, confirmation, notice, summary) from S-22's dates",
)
def campaign_create(phase_changes: tuple[str, ...], by: str | None, **options: Any) -> None:
    """Open the campaign with the phases of S-22 (publicity Oct 10-15, confirmation Oct 16 -
    Nov 30, notice Dec 1 - Jan 29, summary Dec 10-15) unless moved with --phase."""
    from controller.confirmation.campaigns import create_campaign
    from muster.confirmation import default_phases

    changes: dict[str, tuple[date, date]] = {}
    for text in phase_changes:
        name, _, span = text.partition("=")
        start, _, end = span.partition(":")
        try:
            changes[name.strip()] = (date.fromisoformat(start), date.fromisoformat(end))
        except ValueError:
            raise Refused(f"--phase {text[:60]} 应写成 名称=YYYY-MM-DD:YYYY-MM-DD") from None
    with _sessions(options) as sessions:
        try:
            phases = default_phases(options["year"]).with_changes(changes)
            with sessions.begin() as session:
                made = create_campaign(
                    session,
                    year=options["year"],
                    county=options["county"],
                    clock=SystemClock(),
                    by=by or operator_name(),
                    phases=phases,
                )
                summary = {"campaign": made.id, **made.phases}
        except ConfigError as exc:
            raise Refused(str(exc)) from exc
    click.echo(f"已建立 {options['year']} 年度 {options['county']} 的年度确认工作")
    click.echo(json.dumps(summary, ensure_ascii=False))


@confirmation.group()
def roll() -> None:
    """The payment roll (发放名册): ID number, category, monthly amount."""


@roll.command("import")
@_campaign_options
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help=".csv (UTF-8 or GBK) or .xlsx with 公民身份号码, 优抚对象类别, 月发放金额 (联系电话 optional)",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="rejected rows and their reasons (CSV; default FILE.rejected.csv)",
)
def roll_import(path: Path, report_path: Path | None, by: str | None, **options: Any) -> None:
    """Import the roll: every row checked, rejected rows listed with the reason, nothing else
    changed; importing the same roll again changes nothing."""
    from rich.progress import Progress

    from controller.confirmation.campaigns import find_campaign
    from controller.confirmation.roll import import_roll
    from controller.records.initial_import import write_rejections

    with _sessions(options) as sessions:
        try:
            with sessions() as session:
                campaign_id = find_campaign(session, options["year"], options["county"]).id
            with Progress(transient=True) as progress:
                task = progress.add_task("导入名册 importing", total=None)
                report = import_roll(
                    sessions,
                    campaign_id,
                    path,
                    clock=SystemClock(),
                    progress=lambda n: progress.advance(task, n),
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
        f"共 {s['rows']} 行：新增 {s['added']}，更新 {s['changed']}，未变 {s['unchanged']}，"
        f"拒绝 {s['rejected']}"
    )
    click.echo(json.dumps(s))


@confirmation.command("plan-visits")
@_campaign_options
def plan_visits_command(by: str | None, **options: Any) -> None:
    """Plan the home visits per township and age band from the quotas (S-21)."""
    from controller.confirmation.campaigns import plan_visits

    with _campaign(options) as (session, found):
        plan = plan_visits(session, found)
        for row in plan:
            click.echo(
                f"{row.township_code}  {row.band.value:>5}  {row.people:>5} 人  "
                f"应上门 {row.required}"
            )
        rows = [
            {
                "township": r.township_code,
                "band": r.band.value,
                "people": r.people,
                "visits": r.required,
            }
            for r in plan
        ]
    click.echo(json.dumps({"townships": len({r["township"] for r in rows}), "plan": rows}))


@confirmation.command("notice")
@_campaign_options
def notice_command(by: str | None, **options: Any) -> None:
    """Put everyone still unconfirmed on the public notice from today."""
    from controller.confirmation.steps import publish_notice

    clock = SystemClock()
    with _campaign(options) as (session, found):
        noticed = publish_notice(
            session, found, day=clock.today(), at=clock.now(), by=by or operator_name()
        )
        count = len(noticed)
    click.echo(f"已公告未确认人员 {count} 人；公告名单见管理页面“年度确认 → 公告名单”")
    click.echo(json.dumps({"noticed": count}))


@confirmation.command("stop")
@_campaign_options
@click.option("--approve", "approve", multiple=True, help="approve the stop of this ID number")
@click.option("--approve-all", is_flag=True, help="approve every proposed stop")
def stop_command(
    approve: tuple[str, ...], approve_all: bool, by: str | None, **options: Any
) -> None:
    """Propose stops for everyone noticed 60 days ago without contact; with --approve the
    county approves, and payments stop from the next month."""
    from sqlalchemy import select

    from controller.confirmation.steps import approve_stop, propose_stops
    from controller.db.models import ConfirmationSubject
    from muster.confirmation import Status

    clock = SystemClock()
    who = by or operator_name()
    with _campaign(options) as (session, found):
        proposed = propose_stops(session, found, day=clock.today(), at=clock.now(), by=who)
        targets = list(approve)
        if approve_all:
            targets += session.scalars(
                select(ConfirmationSubject.id_number).where(
                    ConfirmationSubject.campaign_id == found.id,
                    ConfirmationSubject.status == Status.STOP_PENDING.value,
                )
            ).all()
        stopped = [
            approve_stop(session, found, n, day=clock.today(), at=clock.now(), by=who)
            for n in dict.fromkeys(targets)
        ]
        for s in stopped:
            click.echo(f"{s.id_number} {s.name} 自 {s.stop_from and s.stop_from[:7]} 起停发")
        result = {"proposed": len(proposed), "stopped": len(stopped)}
    click.echo(json.dumps(result))


@confirmation.command("restore")
@_campaign_options
@click.option("--id", "id_number", required=True, help="ID number of the stopped person")
@click.option("--reason", required=True, help="why (e.g. confirmed at the station on ...)")
def restore_command(id_number: str, reason: str, by: str | None, **options: Any) -> None:
    """Restore a stopped person's payments, with the months owed."""
    from controller.confirmation.steps import restore

    clock = SystemClock()
    with _campaign(options) as (session, found):
        s = restore(
            session,
            found,
            id_number,
            day=clock.today(),
            at=clock.now(),
            by=by or operator_name(),
            reason=reason,
        )
        result: dict[str, Any] = {
            "id_number": s.id_number,
            "months_owed": s.months_owed,
            "owed_fen": s.months_owed * s.monthly_fen,
        }
    click.echo(f"已恢复发放，补发 {result['months_owed']} 个月共 {result['owed_fen'] / 100:.2f} 元")
    click.echo(json.dumps(result))


@confirmation.command("death")
@_campaign_options
@click.option("--id", "id_number", help="ID number of a person reported dead at a visit")
@click.option("--date", "death_date", help="date of death (YYYY-MM-DD)")
@click.option("--from-funeral", is_flag=True, help="record everyone the funeral records show dead")
def death_command(
    id_number: str | None,
    death_date: str | None,
    from_funeral: bool,
    by: str | None,
    **options: Any,
) -> None:
    """Record a death and its over-payment (S-23)."""
    from controller.confirmation.steps import apply_funeral_deaths, record_death

    clock = SystemClock()
    who = by or operator_name()
    with _campaign(options) as (session, found):
        if from_funeral:
            done = apply_funeral_deaths(session, found, day=clock.today(), at=clock.now(), by=who)
        elif id_number and death_date:
            try:
                died = date.fromisoformat(death_date)
            except ValueError:
                raise Refused(f"--date {death_date[:20]} 应写成 YYYY-MM-DD") from None
            done = [
                record_death(
                    session,
                    found,
                    id_number,
                    death_date=died,
                    day=clock.today(),
                    at=clock.now(),
                    by=who,
                    source="visit",
                )
            ]
        else:
            raise Refused("请给出 --id 和 --date（走访中报告的死亡），或 --from-funeral")
        rows = [
            {
                "id_number": s.id_number,
                "death_date": s.death_date,
                "overpaid_months": s.overpaid_months,
                "overpaid_fen": s.overpaid_fen,
            }
            for s in done
        ]
    for r in rows:
        click.echo(f"{r['id_number']} 死亡日期 {r['death_date']}，多发 {r['overpaid_months']} 个月")
    click.echo(json.dumps({"deaths": rows}))


@confirmation.command("spot-check")
@_campaign_options
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), required=True, help="random seed")
@click.option(
    "--size",
    type=click.IntRange(1, 100_000),
    default=30,
    show_default=True,
    help="how many confirmed records to draw",
)
def spot_check_command(seed: int, size: int, by: str | None, **options: Any) -> None:
    """Draw a spot check of the confirmed; the seed and the sample are kept for audit."""
    from controller.confirmation.spot_checks import draw_spot_check

    with _campaign(options) as (session, found):
        check = draw_spot_check(
            session, found, seed=seed, size=size, clock=SystemClock(), by=by or operator_name()
        )
        result = {"spot_check": check.id, "seed": seed, "sample": list(check.sample)}
    click.echo(json.dumps(result))


@confirmation.command("face-templates")
@_campaign_options
@click.option("--refresh", is_flag=True, help="describe again those already described")
def face_templates_command(refresh: bool, by: str | None, **options: Any) -> None:
    """Make the subjects' face templates (for the devices; never pictures) from the photos."""
    from controller.confirmation.templates import compute_templates_shown
    from controller.devices.pki_store import load_upload_keys

    pki = settings_for(options.get("data_dir"), options.get("database_url")).data_dir / "pki"
    with _campaign(options) as (session, found):
        now = SystemClock().now()
        report = compute_templates_shown(session, found, load_upload_keys(pki), now, refresh)
    click.echo(json.dumps(report.summary(), ensure_ascii=False))


@confirmation.command("report")
@_campaign_options
@click.option("--week", is_flag=True, required=True, help="the weekly progress workbook")
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), help="where (default: the data dir)"
)
def report_command(week: bool, out: Path | None, by: str | None, **options: Any) -> None:
    """Write this week's progress workbook (per township and county, by age band and channel)."""
    from controller.confirmation.weekly import write_weekly_xlsx

    clock = SystemClock()
    settings = settings_for(options.get("data_dir"), options.get("database_url"))
    with _campaign(options) as (session, found):
        path = out or settings.data_dir / "confirmation" / (
            f"weekly-{found.county_code}-{found.year}-{clock.today()}.xlsx"
        )
        write_weekly_xlsx(session, found, clock.today(), path)
    click.echo(f"周报已写入 {path}")
    click.echo(json.dumps({"path": str(path)}))
