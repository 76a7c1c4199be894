"""Every option of every ``muster`` command says in ``--help`` what it is for: a technician at a
township reads the help, not the code."""

from __future__ import annotations

import click

from muster.cli import cli


def _options(
    command: click.Command, path: list[str], ctx: click.Context
) -> list[tuple[str, str, str]]:
    """(command path, option, help) for every option under ``command``, lazy groups loaded."""
    found = [
        (" ".join(path), param.opts[0], param.help or "")
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden
    ]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{' '.join(path)} lists {name} but cannot load it"
            found += _options(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))
    return found


def test_every_option_of_every_command_has_help() -> None:
    options = _options(cli, ["muster"], click.Context(cli, info_name="muster"))
    assert len(options) > 100  # the walk really reached the lazily loaded commands
    commands = {command for command, _, _ in options}
    assert {
        "muster provision enroll",
        "muster provision code create",
        "muster sim fleet",
    } <= commands
    lacking = [f"{command} {option}" for command, option, text in options if not text.strip()]
    assert not lacking, "options without help: " + ", ".join(lacking)


def test_the_walk_notices_an_option_without_help() -> None:
    """The check itself: a command with a bare option is reported."""

    @click.command()
    @click.option("--bare")
    @click.option("--told", help="said")
    def probe(bare: str, told: str) -> None:
        """A probe."""

    found = _options(probe, ["probe"], click.Context(probe, info_name="probe"))
    assert [(option, bool(text)) for _, option, text in found] == [
        ("--bare", False),
        ("--told", True),
    ]
