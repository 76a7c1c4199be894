"""What a chaos run asks of the centre through its admin API: issue a command while replicas
come and go, and read which devices the centre holds online."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import httpx

from muster.chaos_plan import CommandEvent
from tests.chaos.counts import ChaosCounts
from tests.chaos.world import ChaosDevice
from tests.fixtures.fleet import ControllerProcess

__all__ = ["check_status", "issue_command"]


def issue_command(
    controllers: Sequence[ControllerProcess],
    device_id: str,
    event: CommandEvent,
    retry_s: float = 120.0,
) -> list[str] | None:
    """Issue ``event``'s command on any replica: None once one took it, else why each did not.
    While none answers at all (all restarting: half a minute each on a loaded machine) it
    tries again, as an admin would, for up to ``retry_s``; a refusal (4xx) is final."""
    body: dict[str, object] = {"kind": "set-log-level", "arguments": {"level": "INFO"}}
    if event.expires_in_s is not None:
        body["expires_in_s"] = event.expires_in_s
    deadline = time.monotonic() + retry_s
    while True:
        why: list[str] = []
        answered = False
        for controller in controllers:
            try:
                response = httpx.post(
                    f"{controller.admin_url}/api/v1/devices/{device_id}/commands",
                    headers=controller.auth,
                    json=body,
                    timeout=10,
                )
            except (httpx.HTTPError, OSError, RuntimeError) as exc:
                why.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            if response.status_code == 201:
                return None
            # A 5xx is a replica that lost its database for a moment: try again, as for none.
            answered = answered or response.status_code < 500
            why.append(f"{response.status_code}: {response.text[:200]}")
        if answered or time.monotonic() > deadline:
            return why
        time.sleep(2.0)


def check_status(
    devices: Sequence[ChaosDevice], controllers: Sequence[ControllerProcess], counts: ChaosCounts
) -> None:
    """Up devices must read online at the centre; one killed -9 now must read offline."""
    dead = devices[-1] if len(devices) > 1 else None
    up = [d for d in devices if d is not dead]
    ids = {d.name: d.edge.device_id for d in devices}

    def view() -> dict[str, bool]:
        for controller in controllers:
            try:
                return {str(d["id"]): bool(d["online"]) for d in controller.devices()}
            except (httpx.HTTPError, OSError):
                continue
        return {}

    def settled(expect: dict[str, bool]) -> bool:
        seen = view()
        return all(seen.get(ids[name]) == online for name, online in expect.items())

    expect = {d.name: True for d in devices}
    _wait(lambda: settled(expect), 90)
    if dead is not None:
        dead.kill()
        expect[dead.name] = False
        _wait(lambda: settled(expect), 90)
    seen = view()
    counts.devices_up = len(up)
    counts.devices_up_online = sum(1 for d in up if seen.get(ids[d.name]) is True)
    counts.devices_dead = 1 if dead else 0
    counts.devices_dead_offline = 1 if dead and seen.get(ids[dead.name]) is False else 0
    counts.status_wrong = [
        name for name, online in expect.items() if seen.get(ids[name]) is not online
    ]


def _wait(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(1.0)
    return False
