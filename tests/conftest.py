"""Fixtures shared by every test tier. Each module under tests/fixtures/ is a pytest plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

# Fixture modules import one another; rewriting the whole package up front keeps their asserts
# informative whatever order the plugins load in.
pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if not p.stem.startswith("_")
)
