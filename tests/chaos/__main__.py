"""``python -m tests.chaos``: the same as ``muster sim chaos``."""

from tests.chaos.cli import chaos

chaos()
