"""The device's broker list and the order it tries it in, apart from any socket (sans-I/O), so
the failover order is tested on a virtual clock.

A device holds one or more broker addresses, the nodes of one cluster. It connects to the first
that answers; when an attempt fails or a live connection is lost, it waits the jittered backoff
(:mod:`muster.backoff`, reset by every connection that is accepted) and tries the *next* address,
rotating. So the devices of a node that dies move to the others, spread over the backoff's jitter
rather than all in the same second, and a node that is down costs one backoff step, not a stall.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from muster.backoff import Backoff
from muster.clock import Clock
from muster.errors import ConfigError
from muster.mqtt import BrokerAddress, parse_broker_list

__all__ = ["Attempt", "BrokerRotation", "keep_connected", "parse_broker_list"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One connection attempt: ``address`` (``position`` in the list, from 0) after ``wait_s``."""

    address: BrokerAddress
    position: int
    wait_s: float


class BrokerRotation:
    """Which broker to try next and after how long. The first attempt goes to the first address
    at once; every later one (after a failure or a loss) to the next address, rotating, after
    ``backoff.next_delay()``. :meth:`connected` after a broker accepted resets the backoff."""

    def __init__(self, addresses: Sequence[BrokerAddress], backoff: Backoff) -> None:
        if not addresses:
            raise ConfigError("a broker rotation needs at least one address")
        self.addresses = tuple(addresses)
        self._backoff = backoff
        self._position: int | None = None

    @property
    def current(self) -> BrokerAddress:
        """The address of the latest attempt (the first address before any)."""
        return self.addresses[self._position or 0]

    def next_attempt(self) -> Attempt:
        if self._position is None:
            self._position = 0
            return Attempt(self.addresses[0], 0, 0.0)
        self._position = (self._position + 1) % len(self.addresses)
        return Attempt(self.addresses[self._position], self._position, self._backoff.next_delay())

    def connected(self) -> None:
        self._backoff.reset()


async def keep_connected(
    rotation: BrokerRotation,
    clock: Clock,
    session: Callable[[BrokerAddress], Awaitable[None]],
    *,
    retry_on: tuple[type[Exception], ...],
    on_lost: Callable[[BrokerAddress, Exception | None, Attempt], None] = lambda *_: None,
) -> NoReturn:
    """Run ``session(address)`` for ever, one attempt after another as ``rotation`` says.

    ``session`` connects, calls ``rotation.connected()`` once the broker accepted, and serves
    until the connection breaks with one of ``retry_on`` (or returns: a loss too). ``on_lost``
    hears of each failure or loss, with the attempt that comes next, before its wait."""
    attempt = rotation.next_attempt()
    while True:
        if attempt.wait_s > 0:
            await clock.sleep(attempt.wait_s)
        error: Exception | None = None
        try:
            await session(attempt.address)
        except retry_on as exc:
            error = exc
        lost = attempt.address
        attempt = rotation.next_attempt()
        on_lost(lost, error, attempt)
