"""``muster edge ...``: what runs on a collection device."""

from __future__ import annotations

import click

from muster.cli import LazyGroup

__all__ = ["edge"]


@click.group(
    cls=LazyGroup,
    lazy={
        "run": "edge.daemon_cli:run",
        "launch": "edge.launch_cli:launch",
        "read-card": "edge.card_cli:read_card",
        "snap": "edge.camera_cli:snap",
        "verify-face": "edge.face_cli:verify_face",
    },
)
def edge() -> None:
    """The device daemon and the technician's one-shot device checks."""
