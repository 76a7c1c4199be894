"""``muster controller extract import`` and ``muster controller compare``: a department's extract
in, the comparison with the collected records out (S-10, S-23)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from controller.cli.options import (
    Refused,
    data_dir_option,
    database_url_option,
    operator_name,
    settings_for,
    tell_rejections,
)
from muster.clock import SystemClock
from muster.departments import DEPARTMENTS

__all__ = ["compare", "extract"]

_KINDS = click.Choice(sorted(DEPARTMENTS))


@click.group()
def extract() -> None:
    """Departments' extracts (户籍, 民政, 人社, 医保, 住建, 信访, 兵役, 殡葬)."""


@extract.command(name="import")
@data_dir_option
@database_url_option
@click.option("--department", "kind", type=_KINDS, required=True, help="which department's extract")
@click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    required=True,
    help=".csv (UTF-8 or GBK) or .xlsx with the department's Chinese headers (see README)",
)
@click.option("--region", default="", help="region code prefix the extract covers (2-12 digits)")
@click.option("--by", "by", default=None, help="who imports (default: the login name)")
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="rejected rows and their reasons (CSV; default FILE.rejected.csv)",
)
def import_extract_command(
    kind: str,
    path: Path,
    region: str,
    by: str | None,
    report_path: Path | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Check every row of a department's extract and store it; the same file twice changes
    nothing. A file with another department's or unknown headers is refused, exit status 2."""
    from rich.progress import Progress

    from controller.comparison.extracts import import_extract
    from controller.db import open_database
    from controller.records.initial_import import write_rejections
    from muster.errors import ConfigError

    try:
        total = None
        if path.suffix.lower() == ".csv":
            total = sum(1 for _ in path.open("rb")) - 1
        with (
            open_database(settings_for(data_dir, database_url)) as sessions,
            Progress(transient=True) as progress,
        ):
            task = progress.add_task("检查 checking", total=total)
            report = import_extract(
                sessions,
                kind,
                path,
                now=SystemClock().now(),
                imported_by=by or operator_name(),
                region_prefix=region,
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
    spec = DEPARTMENTS[kind]
    if report.already_imported:
        click.echo(f"{spec.label}的这份数据已导入过（{report.extract_id[:16]}），未作任何更改")
    else:
        click.echo(
            f"{spec.label}：共 {report.rows} 行，导入 {report.accepted}，"
            f"拒绝 {len(report.rejected)}（{report.extract_id[:16]}）"
        )
    click.echo(json.dumps(report.summary(), ensure_ascii=False))


@click.group(invoke_without_command=True)
@data_dir_option
@database_url_option
@click.option("--department", "kind", type=_KINDS, help="which department's extract (required)")
@click.option("--region", default="", help="compare only this region (code prefix)")
@click.option(
    "--collected",
    "collected",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="compare this exported file (initial-data format, or the approved-records workbook) "
    "instead of the records stored at the centre",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    default="duckdb",
    show_default=True,
    help="the record-linkage backend (splink)",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="directory for the findings (required)",
)
@click.option("--by", "by", default=None, help="who runs it (default: the login name)")
@click.pass_context
def compare(
    ctx: click.Context,
    kind: str | None,
    region: str,
    collected: Path | None,
    engine: str,
    out_dir: Path | None,
    by: str | None,
    data_dir: Path | None,
    database_url: str | None,
) -> None:
    """Compare a department's latest extract with the collected records: problems.csv,
    missing.csv, deaths.csv (funeral), comparison.xlsx in OUT; the run is recorded.
    ``compare tasks`` sends a run's findings to the townships."""
    if ctx.invoked_subcommand is not None:
        return
    if kind is None or out_dir is None:
        raise click.UsageError(
            "需要 --department 和 --out (both --department and --out are required)"
        )
    from rich.progress import Progress

    from controller.comparison.runs import run_comparison
    from controller.db import open_database
    from muster.errors import ConfigError

    steps = {
        "loaded": "读取完成 loaded",
        "exact": "身份号码匹配 exact",
        "probabilistic": "概率匹配 linked",
        "written": "已写出 written",
    }
    try:
        with (
            open_database(settings_for(data_dir, database_url)) as sessions,
            Progress(transient=True) as progress,
        ):
            task = progress.add_task("比对 comparing", total=len(steps))

            def step(name: str) -> None:
                progress.update(task, advance=1, description=steps.get(name, name))

            result = run_comparison(
                sessions,
                kind,
                out_dir=out_dir,
                now=SystemClock().now(),
                run_by=by or operator_name(),
                region=region,
                collected_file=collected,
                engine=engine,
                progress=step,
            )
    except ConfigError as exc:
        raise Refused(str(exc)) from exc
    s = result.findings.summary()
    click.echo(
        f"{DEPARTMENTS[kind].label}：部门 {s['department_rows']} 人，采集 {s['collected_rows']} 人；"
        f"身份号码一致 {s['linked_exact']}，概率匹配 {s['linked_probabilistic']}；"
        f"问题数据 {s['problems']} 条，遗漏 {s['missing']} 人，死亡 {s['deaths']} 人；"
        f"结果在 {out_dir}（第 {result.run_id} 次比对）"
    )
    click.echo(json.dumps({"run_id": result.run_id, **s}))


@compare.command("tasks")
@data_dir_option
@database_url_option
@click.option(
    "--run", "run_id", type=click.IntRange(min=1), required=True, help="the comparison run's number"
)
@click.option("--township", default="", help="send only this township's findings (12 digits)")
@click.option(
    "--as",
    "admin",
    required=True,
    help="the admin (username) sending them; their role and area decide what may be sent",
)
def compare_tasks(
    run_id: int, township: str, admin: str, data_dir: Path | None, database_url: str | None
) -> None:
    """Turn a run's problems and missing people into tasks for the townships' devices."""
    from controller.accounts.admins import AccessError
    from controller.comparison.tasks import tasks_from_run
    from controller.db import open_database
    from muster.errors import ConfigError, NotFoundError

    try:
        with open_database(settings_for(data_dir, database_url)) as sessions, sessions.begin() as s:
            made = tasks_from_run(s, run_id, admin, SystemClock().now(), township=township)
    except (ConfigError, NotFoundError, AccessError) as exc:
        raise Refused(str(exc)) from exc
    click.echo(
        f"第 {run_id} 次比对：向 {made.townships} 个乡镇下发任务 {made.created} 项"
        f"（{made.findings} 条比对结果）；无所属乡镇 {made.without_township} 条、"
        f"无身份号码 {made.without_id_number} 条未下发"
    )
    click.echo(
        json.dumps(
            {
                "run_id": run_id,
                "created": made.created,
                "findings": made.findings,
                "without_township": made.without_township,
                "without_id_number": made.without_id_number,
            }
        )
    )
