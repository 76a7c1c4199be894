"""``python -m tests.chaos``: the chaos run, from a checkout (``bash scripts/chaos.sh`` sets up and calls it)."""

from tests.chaos.cli import chaos

chaos()
