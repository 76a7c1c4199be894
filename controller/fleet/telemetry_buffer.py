"""The telemetry consumer's bounded buffer: messages waiting for the next flush, compacted when
full (a device's status and heartbeat superseded by its newer ones) and, when compacting frees
too little, saturated until a flush succeeds (see ``controller/fleet/telemetry_consumer.py``)."""

from __future__ import annotations

import structlog

from controller.fleet.telemetry_store import Message

log = structlog.get_logger(__name__)

__all__ = ["SUPERSEDED_KINDS", "TelemetryBuffer", "coalesce"]

# Kinds a newer message of the same device supersedes.
SUPERSEDED_KINDS = frozenset({"status", "telemetry"})
# Compaction must free at least this share of the buffer, or the buffer counts as saturated.
_MIN_FREED = 0.1


def coalesce(messages: list[Message]) -> list[Message]:
    """The newest status and heartbeat of each device, and every event and ack, in the order the
    survivors arrived."""
    last: dict[tuple[str, str], int] = {}
    for index, (device_id, kind, _payload) in enumerate(messages):
        if kind in SUPERSEDED_KINDS:
            last[(device_id, kind)] = index
    return [
        message
        for index, message in enumerate(messages)
        if message[1] not in SUPERSEDED_KINDS or last[(message[0], message[1])] == index
    ]


class TelemetryBuffer:
    """Messages waiting to be applied, at most ``limit`` of them (see the module docstring)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"telemetry_buffer_max must be at least 1, got {limit}")
        self.limit = limit
        self._messages: list[Message] = []
        self._in_flight = 0
        self._saturated = False
        self.superseded = 0
        self.dropped = 0
        self._unreported_drops = 0

    def __len__(self) -> int:
        return len(self._messages)

    def add(self, message: Message) -> bool:
        """Keep ``message``; False when the buffer was saturated and it was dropped."""
        if len(self._messages) + self._in_flight >= self.limit and not self._saturated:
            before = len(self._messages)
            self._messages = coalesce(self._messages)
            self.superseded += before - len(self._messages)
            freed = self.limit - len(self._messages) - self._in_flight
            self._saturated = freed < self.limit * _MIN_FREED
        if self._saturated or len(self._messages) + self._in_flight >= self.limit:
            self.dropped += 1
            self._unreported_drops += 1
            if self._unreported_drops == 1:
                log.warning(
                    "telemetry buffer full; dropping messages until the database catches up",
                    limit=self.limit,
                    dropped_total=self.dropped,
                )
            return False
        self._messages.append(message)
        return True

    @property
    def in_flight(self) -> int:
        """Messages of the batch being applied."""
        return self._in_flight

    def take(self) -> list[Message]:
        """Everything buffered, for one batch; it still counts against the limit until
        ``done`` or ``give_back``."""
        batch, self._messages = self._messages, []
        self._in_flight += len(batch)
        return batch

    def done(self, batch: list[Message]) -> None:
        self._in_flight -= len(batch)
        self._saturated = False
        self.report_drops()

    def give_back(self, batch: list[Message]) -> None:
        """A batch that failed goes back ahead of what arrived meanwhile."""
        self._messages[:0] = batch
        self._in_flight -= len(batch)
        self.report_drops()

    def report_drops(self) -> None:
        if self._unreported_drops:
            log.warning(
                "telemetry messages dropped: the buffer was full",
                dropped=self._unreported_drops,
                dropped_total=self.dropped,
                limit=self.limit,
            )
            self._unreported_drops = 0
