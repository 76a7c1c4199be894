"""``muster edge verify-face``: the technician's offline check of face verification.

Compares the face of a reference photo (the one on file) with one or more live photos and prints
one JSON object: ``match``, ``score`` (the distance; lower is more alike), ``threshold``,
``reasons`` (stable codes) and ``messages`` (Chinese / English), and with two or more live photos
the liveness challenge's outcome. The best-matching live photo decides. Exit status: 0 a match,
3 no match (or, with ``--require-liveness``, no liveness), 4 no usable face in the reference or
in any live photo, 2 bad input (missing file, not a JPEG/PNG, too large, damaged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Final, NoReturn

import click

from muster.face import (
    DEFAULT_THRESHOLD,
    REASONS,
    FaceImageError,
    NoFace,
    Template,
    Verdict,
    compare,
    face_template,
    liveness,
    read_image,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_NO_FACE", "EXIT_NO_MATCH", "verify_face"]

EXIT_NO_MATCH: Final = 3
EXIT_NO_FACE: Final = 4
EXIT_BAD_INPUT: Final = 2


def _fail(message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(EXIT_BAD_INPUT)


def _emit(body: dict[str, object], code: int) -> NoReturn:
    reasons = body.get("reasons", [])
    assert isinstance(reasons, list)
    body["messages"] = [REASONS.get(str(r), str(r)) for r in reasons]
    click.echo(json.dumps(body, ensure_ascii=False))
    sys.exit(code)


@click.command("verify-face")
@click.option(
    "--reference",
    required=True,
    type=click.Path(path_type=Path),
    help="The reference photo on file (JPEG or PNG).",
)
@click.option(
    "--live",
    "lives",
    required=True,
    multiple=True,
    type=click.Path(path_type=Path),
    help="A live photo (JPEG or PNG); repeat for several frames (liveness needs two or more).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(min=0.0, max=2.0),
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Largest distance still taken as the same person (the model's published value).",
)
@click.option(
    "--require-liveness",
    is_flag=True,
    help="Refuse (exit 3) unless the live frames show a blink or a head turn.",
)
def verify_face(
    reference: Path, lives: tuple[Path, ...], threshold: float, require_liveness: bool
) -> None:
    """Compare a reference photo with live photos and print the verdict as JSON (人脸核验)."""
    try:
        reference_image = read_image(reference)
        live_images = [read_image(path) for path in lives]
    except FaceImageError as exc:
        _fail(f"照片无法使用 / photo unusable: {exc}")

    ref = face_template(reference_image)
    if isinstance(ref, NoFace):
        _emit(
            {
                "match": False,
                "score": None,
                "threshold": threshold,
                "reasons": [f"{ref.reason}_reference"],
            },
            EXIT_NO_FACE,
        )

    verdicts: list[tuple[Path, Verdict]] = []
    reasons: list[str] = []
    for path, image in zip(lives, live_images, strict=True):
        live = face_template(image)
        if isinstance(live, NoFace):
            reasons.append(f"{live.reason}_live")
            continue
        assert isinstance(live, Template)
        verdicts.append((path, compare(ref, live, threshold)))
    if not verdicts:
        _emit(
            {
                "match": False,
                "score": None,
                "threshold": threshold,
                "reasons": sorted(set(reasons)),
            },
            EXIT_NO_FACE,
        )

    best_path, best = min(verdicts, key=lambda pv: pv[1].score)
    body = best.to_dict()
    all_reasons = [*best.reasons, *sorted(set(reasons))]
    body["best_live"] = str(best_path)
    body["scores"] = {str(p): round(v.score, 4) for p, v in verdicts}
    match = best.match
    if len(live_images) >= 2:
        alive = liveness(live_images, same_person=threshold)
        body["liveness"] = alive.to_dict()
        if require_liveness and not alive.live:
            match = False
            all_reasons.append("not_live")
    elif require_liveness:
        match = False
        all_reasons.append("not_live")
    body["match"] = match
    body["reasons"] = all_reasons
    _emit(body, 0 if match else EXIT_NO_MATCH)
