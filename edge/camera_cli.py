"""``muster edge snap``: the technician's one-shot check of a camera.

Opens the camera, takes one photo (an ID photo, or with ``--document`` a rectified document),
writes it as JPEG and prints the quality report as JSON. Exit status: 0 the photo passed every
check, 3 it did not (the reasons are printed in Chinese and English), 4 the settings are wrong,
5 the camera could not be opened or delivered no frame.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Final, NoReturn

import click

from edge.drivers.camera import CameraLostError, CapturedPhoto, capture_photo
from muster.clock import SystemClock
from muster.errors import MusterError
from muster.logs import configure_logging
from muster.profiles import CameraProfile, load_profile

__all__ = ["EXIT_CAMERA", "EXIT_CONFIG", "EXIT_REJECTED", "photo_json", "snap"]

EXIT_REJECTED: Final = 3
EXIT_CONFIG: Final = 4
EXIT_CAMERA: Final = 5


def _fail(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def photo_json(photo: CapturedPhoto, source: str, out: Path) -> dict[str, object]:
    """The JSON object printed for one photo."""
    return {
        "source": source,
        "out": str(out),
        "width": photo.width,
        "height": photo.height,
        "jpeg_bytes": len(photo.jpeg),
        "jpeg_quality": photo.jpeg_quality,
        "taken_at": photo.taken_at.isoformat(),
        **photo.report.to_dict(),
    }


def _camera_profile(camera: str | None, profile_name: str | None) -> CameraProfile:
    base = load_profile(profile_name).camera if profile_name else CameraProfile()
    if camera is not None:
        return base.model_copy(update={"source": camera, "kind": "opencv"})
    if profile_name is None:
        raise click.UsageError("give --camera SRC, or --profile to use the profile's camera")
    return base


@click.command("snap")
@click.option(
    "--camera",
    metavar="SRC",
    help="Device index (0), device path (/dev/video0), video file or stream URL. "
    "Default: the profile's camera.source.",
)
@click.option(
    "--profile",
    "profile_name",
    metavar="PROFILE",
    help="Firmware profile (name or YAML path) for the size, format and JPEG cap.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the JPEG (written even when the photo fails the checks).",
)
@click.option("--document", is_flag=True, help="Photograph a document instead of a person.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=3.0,
    show_default=True,
    help="Seconds to keep trying frames until one passes.",
)
@click.option(
    "--open-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds to wait for the camera's first frame.",
)
def snap(
    camera: str | None,
    profile_name: str | None,
    out: Path,
    document: bool,
    timeout: float,
    open_timeout: float,
) -> None:
    """Take one photo and print its quality report as JSON (拍照测试)."""
    # Standard output carries only the JSON report; the driver's warnings go to stderr.
    configure_logging("WARNING")
    try:
        profile = _camera_profile(camera, profile_name)
        photo = asyncio.run(
            capture_photo(
                profile,
                document=document,
                timeout_s=timeout,
                open_timeout_s=open_timeout,
                clock=SystemClock(),
            )
        )
    except CameraLostError as exc:
        _fail(EXIT_CAMERA, f"摄像头无法使用 / camera unavailable: {exc}")
    except MusterError as exc:
        _fail(EXIT_CONFIG, f"设置错误 / settings error: {exc}")
    try:
        out.write_bytes(photo.jpeg)
    except OSError as exc:
        _fail(EXIT_CONFIG, f"无法写入 / cannot write {out}: {exc}")
    click.echo(json.dumps(photo_json(photo, profile.source, out), ensure_ascii=False))
    if not photo.passed:
        for reason in photo.report.reasons:
            click.echo(f"{reason.zh} / {reason.en}", err=True)
        sys.exit(EXIT_REJECTED)
