"""Jittered exponential backoff, so a township's devices coming back after an outage do not all
reconnect in the same second."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    _current: float = 0.0

    def next_delay(self) -> float:
        self._current = self.initial if self._current == 0 else min(self._current * 2, self.maximum)
        return self._current * (0.5 + self.rng.random())

    def reset(self) -> None:
        self._current = 0.0
