"""What the controller's one-shot commands share: where the database is, a session on it (data
dir created, schema brought up to date) whose refusals become usage errors, how a refusal and a
file's rejected rows are told, and who is running the command."""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from sqlalchemy.orm import Session

from controller.settings import ControllerSettings
from muster.errors import ConfigError

data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="keys and the SQLite database (default var/controller)",
)
database_url_option = click.option(
    "--database-url",
    help="e.g. postgresql+psycopg://muster@db/muster (default: SQLite in the data dir)",
)


def settings_for(data_dir: Path | None, database_url: str | None) -> ControllerSettings:
    given: dict[str, object] = {}
    if data_dir is not None:
        given["data_dir"] = data_dir
    if database_url:
        given["database_url"] = database_url
    return ControllerSettings(**given)  # type: ignore[arg-type]


@contextmanager
def command_session(data_dir: Path | None, database_url: str | None) -> Iterator[Session]:
    """One transaction on the controller's database, committed when the block ends."""
    from controller.db import open_database

    try:
        with (
            open_database(settings_for(data_dir, database_url)) as sessions,
            sessions.begin() as session,
        ):
            yield session
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc


class Refused(click.ClickException, ConfigError):
    """A refusal with its reason and exit status 2, without the usage text; a ``ConfigError`` so
    the command's own callers can catch it like any refused input."""

    exit_code = 2

    def show(self, file: object = None) -> None:
        click.echo(f"错误 error: {self.format_message()}", err=True)


def operator_name() -> str:
    """Who runs the command, for the records it writes (``--by`` overrides it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def tell_rejections(count: int, shown: Iterable[tuple[int, str]], report_path: Path) -> None:
    """The first rejected rows of a file (line, reason) on stderr, and where the rest are."""
    for line, reason in shown:
        click.echo(f"  第 {line} 行：{reason}", err=True)
    click.echo(f"{count} 行未导入，原因见 {report_path}", err=True)
