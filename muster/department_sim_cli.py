"""``muster sim department --kind KIND --listen HOST:PORT``: a simulated department system
(muster.department_sim) on a real HTTP server, for tests, benchmarks and the demo."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from muster.one_application import ITEMS

__all__ = ["department"]


def _listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:9101")
    return host, int(port)


@click.command()
@click.option("--kind", required=True, type=click.Choice(list(ITEMS)), help="the item it handles")
@click.option("--listen", required=True, help="HOST:PORT to take deliveries on (POST /deliveries)")
@click.option(
    "--secret-file",
    required=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="the whsec_ secret shared with the centre (`muster controller department add`)",
)
@click.option("--callback-url", default="", help="the centre's /hooks/departments/ID for this one")
@click.option(
    "--outcome",
    type=click.Choice(["accepted", "more_materials", "rejected"]),
    default="accepted",
    show_default=True,
    help="what the simulated department answers",
)
@click.option("--wanted", multiple=True, help="materials to ask for (with more_materials)")
@click.option("--reason", default="材料不符合要求", help="why (with rejected)")
@click.option("--appointment", default="", help="when to come, ISO with offset")
@click.option("--place", default="", help="where to come")
@click.option("--bring", multiple=True, help="materials to bring (repeatable)")
@click.option("--fail-first", type=click.IntRange(min=0), default=0, help="answer 500 this often")
@click.option(
    "--hang-first", type=click.IntRange(min=0), default=0, help="answer nothing this often"
)
@click.option(
    "--hang-s",
    type=click.FloatRange(0, 3600),
    default=30.0,
    show_default=True,
    help="seconds a hung request is held",
)
@click.option("--slow-s", type=click.FloatRange(0, 600), default=0.0, help="wait before answering")
@click.option("--duplicate-callbacks", is_flag=True, help="send every callback twice")
@click.option(
    "--reject-status",
    type=click.IntRange(400, 499),
    default=None,
    help="answer every delivery with this HTTP status",
)
@click.option("--silent", is_flag=True, help="send no callbacks")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), help="serve HTTPS")
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False), help="the key of --tls-cert"
)
def department(
    kind: str,
    listen: str,
    secret_file: Path,
    callback_url: str,
    outcome: str,
    wanted: tuple[str, ...],
    reason: str,
    appointment: str,
    place: str,
    bring: tuple[str, ...],
    fail_first: int,
    hang_first: int,
    hang_s: float,
    slow_s: float,
    duplicate_callbacks: bool,
    reject_status: int | None,
    silent: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Run a simulated department until Ctrl-C; GET /stats shows what it received."""
    import uvicorn

    from muster.clock import SystemClock
    from muster.department_sim import DepartmentScript, SimulatedDepartment, create_department_app

    host, port = _listen(listen)
    if not callback_url and not silent:
        raise click.UsageError("--callback-url is needed unless --silent")
    script = DepartmentScript(
        outcome=outcome,
        wanted=wanted,
        reason=reason,
        appointment_at=appointment,
        place=place,
        bring=bring,
        fail_first=fail_first,
        hang_first=hang_first,
        hang_s=hang_s,
        slow_s=slow_s,
        duplicate_callbacks=duplicate_callbacks,
        reject_status=reject_status or 0,
        silent=silent,
    )
    secret = secret_file.read_text(encoding="utf-8").strip()
    sim = SimulatedDepartment(secret, callback_url, SystemClock(), script)
    click.echo(f"模拟部门 {ITEMS[kind].zh} 在 http://{host}:{port}/deliveries 接收", err=True)
    config = uvicorn.Config(create_department_app(sim), host=host, port=port, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve())
