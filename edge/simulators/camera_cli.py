"""``muster sim camera``: write a simulated camera as an MJPG video file.

The file is a camera source for the driver and for ``muster edge snap --camera FILE.avi``.
With an ``unplug`` fault the command stays in the foreground after writing and takes the file
away and back at the scripted times, as a cable being pulled and replugged.
"""

from __future__ import annotations

from pathlib import Path

import click

from edge.simulators.camera import FAULT_KINDS, Fault, Scene, play_unplugs, write_video
from muster.errors import ConfigError


@click.command("camera")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .avi file to write.",
)
@click.option(
    "--fault",
    "fault_specs",
    multiple=True,
    metavar="KIND[@START[+DURATION]]",
    help=(
        f"Scripted fault, repeatable. KIND: {', '.join(FAULT_KINDS)}. START and DURATION in "
        "seconds (default: the whole video; for unplug, seconds after writing, for 3 s)."
    ),
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Length of the video; the driver loops it.",
)
@click.option(
    "--subject",
    type=click.Choice(["portrait", "document"]),
    default="portrait",
    show_default=True,
    help="A person facing the camera, or an ID card lying on a desk.",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=1, max=60),
    default=15.0,
    show_default=True,
    help="frames per second of the video",
)
@click.option(
    "--width", type=click.IntRange(min=160), default=640, show_default=True, help="frame width"
)
@click.option(
    "--height", type=click.IntRange(min=120), default=480, show_default=True, help="frame height"
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sensor noise.")
def camera(
    out: Path,
    fault_specs: tuple[str, ...],
    seconds: float,
    subject: str,
    fps: float,
    width: int,
    height: int,
    seed: int,
) -> None:
    """Simulated camera (模拟摄像头): an MJPG .avi usable as a camera source."""
    try:
        faults = tuple(Fault.parse(spec) for spec in fault_specs)
        scene = Scene(
            width=width,
            height=height,
            fps=fps,
            subject="document" if subject == "document" else "portrait",
            faults=faults,
            seed=seed,
        )
        count = write_video(out, scene, seconds)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"wrote {out}: {count} frames, {width}x{height} at {fps:g} fps")
    if any(f.kind == "unplug" for f in faults):
        try:
            play_unplugs(out, faults, say=click.echo)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
