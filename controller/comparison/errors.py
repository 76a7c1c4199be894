"""The comparison's one error: what it was asked cannot be done; the message says what to do."""

from __future__ import annotations

from muster.errors import ConfigError

__all__ = ["ComparisonError"]


class ComparisonError(ConfigError):
    """A comparison or an extract import cannot go ahead (no extract for the department, an
    unreadable collected file, Spark asked for but not installed); nothing was changed."""
