"""The daemon's recent log lines, kept in memory so the centre can ask for them (the
``upload-logs`` command) without a technician on site.

Lines are captured after structlog's redaction, exactly as written to stderr, so ID numbers and
secrets never reach the tail.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from muster.logs import configure_logging

Renderer = Callable[[Any, str, MutableMapping[str, Any]], Any]


class LogTail:
    def __init__(self, max_lines: int = 2000) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)

    def install(self) -> None:
        """Tee the rendered lines of the current structlog configuration into the tail."""
        processors = list(structlog.get_config()["processors"])
        if not processors or getattr(processors[-1], "_log_tail", None) is self:
            return
        renderer: Renderer = processors[-1]

        def tee(logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
            line = renderer(logger, name, event)
            self._lines.append(line if isinstance(line, str) else str(line))
            return line

        tee._log_tail = self  # type: ignore[attr-defined]
        processors[-1] = tee
        structlog.configure(processors=processors)

    def set_level(self, level: str) -> None:
        """Change the log level of the running daemon, keeping the tail."""
        configure_logging(level)
        self.install()

    def tail(self, max_bytes: int) -> str:
        """The newest lines that fit in ``max_bytes`` of UTF-8, oldest first."""
        picked: list[str] = []
        size = 0
        for line in reversed(self._lines):
            cost = len(line.encode()) + 1
            if size + cost > max_bytes:
                break
            picked.append(line)
            size += cost
        return "\n".join(reversed(picked))


__all__ = ["LogTail"]
