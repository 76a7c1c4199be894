"""Where the simulated fleet lives: N devices spread over China's townships the way the campaign
deploys them (a fixed kiosk and a portable tablet per township, S-05), with ids both the load
simulator and the controller's bulk registration derive from the same numbers.

Townships are the current counties (from the division-code table) times 14 townships each,
about 39,900 in all, close to the 39,905 of S-12.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from muster.region_names import current_counties

TOWNSHIPS_PER_COUNTY = 14
# A prime coprime to the township count, so consecutive devices land far apart and even a small
# simulated fleet covers many provinces.
_STRIDE = 7919
SIMULATED_MARK = "-SIM"


@dataclass(frozen=True, slots=True)
class SimulatedDevice:
    index: int
    device_id: str
    township_code: str
    profile: str


@functools.cache
def townships() -> tuple[str, ...]:
    return tuple(
        f"{county}{n:03d}000"
        for county in current_counties()
        for n in range(1, TOWNSHIPS_PER_COUNTY + 1)
    )


def simulated_device(index: int) -> SimulatedDevice:
    all_townships = townships()
    township = all_townships[((index // 2) * _STRIDE) % len(all_townships)]
    profile = "fixed-kiosk" if index % 2 == 0 else "portable-tablet"
    return SimulatedDevice(index, f"{township}{SIMULATED_MARK}{index:06d}", township, profile)


def simulated_fleet(count: int, first: int = 0) -> list[SimulatedDevice]:
    return [simulated_device(i) for i in range(first, first + count)]


__all__ = ["SimulatedDevice", "simulated_device", "simulated_fleet", "townships"]
