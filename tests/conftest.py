"""Fixtures shared by every test tier. Each module under tests/fixtures/ is a pytest plugin.

Hypothesis runs under a profile named by the environment variable ``HYPOTHESIS_PROFILE``:

- ``dev`` (the default): new examples every run, failures remembered in ``.hypothesis/`` and
  replayed first next time;
- ``ci`` (``scripts/test.sh`` sets it when ``CI=true``): the same examples on every run
  (``derandomize``), no example database, and the blob to ``@reproduce_failure`` printed with a
  failure so it can be replayed anywhere.

Neither has a deadline: the suite runs on loaded two-core machines and under faketime, where a
fixed per-example time limit fails tests that are merely slow.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# Fixture modules import one another; rewriting the whole package up front keeps their asserts
# informative whatever order the plugins load in.
pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if not p.stem.startswith("_")
)
