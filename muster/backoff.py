"""Jittered exponential backoff, one rule for every retry loop on both sides.

A township's devices coming back after an outage must not all reconnect in the same second, and a
controller replica must not hammer a broker that is restarting. The jitter comes from a
``random.Random`` the owner hands in, so a test (or a replayed fault run) sees the same delays.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """``next_delay()`` doubles from ``initial`` up to ``maximum`` and spreads each delay over
    [0.5, 1.5) of its nominal value; ``reset()`` after a success starts again from ``initial``."""

    initial: float = 0.5
    maximum: float = 60.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _current: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(
                f"backoff needs 0 < initial <= maximum, got initial={self.initial}, "
                f"maximum={self.maximum}"
            )

    @property
    def nominal(self) -> float:
        """The nominal (unjittered) delay of the last ``next_delay()``; 0 before the first."""
        return self._current

    def next_delay(self) -> float:
        self._current = self.initial if self._current == 0 else min(self._current * 2, self.maximum)
        return self._current * (0.5 + self.rng.random())

    def reset(self) -> None:
        self._current = 0.0
