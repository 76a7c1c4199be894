"""``muster edge launch``: the launcher (edge/launcher.py), what a systemd unit starts."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from muster.errors import MusterError
from muster.logs import configure_logging

__all__ = ["launch"]


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path),
    help="the device's state dir, as for `muster edge run` (default var/edge)",
)
@click.option(
    "--max-starts",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    help="starts a new version gets to confirm it is healthy before it is rolled back",
)
@click.option(
    "--crash-backoff",
    type=click.FloatRange(0.01, 600),
    default=1.0,
    show_default=True,
    help="seconds before starting a crashed daemon again (doubles up to 60 s)",
)
@click.option(
    "--overdue-grace",
    type=click.FloatRange(0, 86_400),
    default=60.0,
    show_default=True,
    help="seconds past a new version's health window before the launcher rolls it back",
)
@click.option(
    "--module",
    default="muster",
    show_default=True,
    help="the module the slot runs as the daemon (python -m MODULE ARGS)",
)
@click.option("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def launch(
    state_dir: Path | None,
    max_starts: int,
    crash_backoff: float,
    overdue_grace: float,
    module: str,
    log_level: str,
    args: tuple[str, ...],
) -> None:
    """Run the daemon from the current software slot and start it again after each update's
    restart, rollback or crash; ARGS (after --) replace the daemon's default arguments
    `edge run --state-dir STATE_DIR`. Stops the daemon and exits on SIGTERM/SIGINT."""
    import random

    from edge.launcher import Launcher
    from edge.settings import EdgeSettings
    from muster import __version__
    from muster.backoff import Backoff
    from muster.clock import SystemClock

    configure_logging(log_level)
    settings = EdgeSettings(**({"state_dir": state_dir} if state_dir else {}))  # type: ignore[arg-type]
    directory = settings.state_dir
    if not module.replace(".", "").replace("_", "").isalnum() or module.startswith("."):
        click.echo(f"错误 (error): 模块名 {module!r} 不合规 (give a module name such as muster)")
        sys.exit(2)
    daemon_args = list(args) or ["edge", "run", "--state-dir", str(directory)]
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        launcher = Launcher(
            directory,
            factory_version=__version__,
            args=daemon_args,
            module=module,
            clock=SystemClock(),
            max_starts=max_starts,
            overdue_grace_s=overdue_grace,
            backoff=Backoff(
                initial=crash_backoff,
                maximum=max(60.0, crash_backoff),
                rng=random.Random(str(directory.resolve())),
            ),
        )
        sys.exit(launcher.run(stop))
    except (MusterError, OSError) as exc:
        click.echo(f"错误 (error): 启动器无法运行 (the launcher cannot run): {exc}", err=True)
        sys.exit(2)
