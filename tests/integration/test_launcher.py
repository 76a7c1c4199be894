"""The launcher (``muster edge launch``) as a real process over the real updater: it starts the
daemon (a stand-in, tests/integration/launch_probe.py, installed as ``muster_probe`` in the
factory install and in each release's wheel) from the current slot, starts the new version after
the update's restart, rolls back a release that crashes on every start or never confirms it is
healthy, and survives kill -9 without ever running two daemons."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import zipfile
from pathlib import Path

from sqlalchemy import select, update

from controller.db.models import Rollout, RolloutDevice, UpdateEvent
from controller.releases.keys import load_release_keys
from controller.releases.store import add_release
from muster.release_artifacts import build_artifact
from tests.integration.test_updates import Centre, Device, centre, untouched

__all__ = ["centre"]  # the fixture, shared with the update tests

ROOT = Path(__file__).resolve().parents[2]
PROBE = (Path(__file__).parent / "launch_probe.py").read_text()


def probe_source(version: str, mode: str) -> str:
    return PROBE.replace('VERSION = "0.1.0"', f'VERSION = "{version}"').replace(
        'MODE = "good"', f'MODE = "{mode}"'
    )


def add_probe_release(centre: Centre, version: str, mode: str) -> None:
    parts = centre.tmp / f"parts-{version}"
    parts.mkdir()
    with zipfile.ZipFile(parts / f"muster_probe-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr("muster_probe.py", probe_source(version, mode))
    artifact = centre.tmp / f"release-{version}.tar"
    key = load_release_keys(centre.pki.directory)
    build_artifact(
        artifact,
        version=version,
        profiles=["simulator"],
        minimum_version="0.1.0",
        parts=sorted(parts.iterdir()),
        key=key.signing.key,
    )
    with centre.sessions.begin() as session:
        add_release(
            session, centre.settings.data_dir, artifact, key.trusted(), now=centre.clock.now()
        )


class Launched:
    def __init__(self, centre: Centre, device: Device) -> None:
        factory = centre.tmp / "factory-install"
        if not factory.exists():
            factory.mkdir()
            (factory / "muster_probe.py").write_text(probe_source("0.1.0", "good"))
        self.device = device
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(factory), str(ROOT)])}
        self.command = [sys.executable, "-m", "muster", "edge", "launch"]
        self.command += ["--state-dir", str(device.directory), "--module", "muster_probe"]
        self.command += ["--crash-backoff", "0.05", "--overdue-grace", "0.5"]
        self.log = device.directory.parent / f"{device.directory.name}.starts.log"
        self.command += ["--", str(device.directory), centre.endpoint, str(self.log)]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = await asyncio.wait_for(self.process.wait(), 60)
        if sig == signal.SIGKILL:
            self.device.kills += 1
        return code

    def starts(self) -> list[tuple[str, str, int]]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [(v, s, int(p)) for v, s, p in (line.split() for line in lines)]

    async def until(self, condition: object, timeout_s: float = 60) -> None:
        for _ in range(int(timeout_s / 0.05)):
            if callable(condition) and condition():
                return
            assert self.process is not None
            if self.process.returncode is not None:
                raise AssertionError(f"the launcher exited: {await self.process.stderr.read()!r}")  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition never held; starts: {self.starts()}")


def entry(centre: Centre, rollout_id: int, device: Device) -> RolloutDevice:
    with centre.sessions() as session:
        found = session.get(RolloutDevice, (rollout_id, device.device_id))
        assert found is not None
        return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie no one reaped yet is dead for our purpose.
    status = Path(f"/proc/{pid}/stat")
    return status.exists() and status.read_text().split()[2] != "Z"


async def test_the_launcher_starts_the_new_version_after_the_update(centre: Centre) -> None:
    device = centre.enrol()
    before = untouched(device)
    add_probe_release(centre, "0.2.0", "good")
    rollout_id = centre.rollout("0.2.0", [100], soak_s=0)
    launched = Launched(centre, device)
    await launched.start()
    await launched.until(lambda: entry(centre, rollout_id, device).state == "healthy")
    starts = launched.starts()
    assert [(v, s) for v, s, _ in starts] == [("0.1.0", "factory"), ("0.2.0", "a")]
    assert await launched.stop() == 0
    assert not alive(starts[-1][2])  # the daemon stopped with the launcher
    assert (device.directory / "software" / "current").readlink().name == "a"
    assert untouched(device) == before


async def test_a_release_crashing_on_every_start_is_rolled_back_by_the_launcher(
    centre: Centre,
) -> None:
    device = centre.enrol()
    before = untouched(device)
    add_probe_release(centre, "0.2.0", "crash")
    rollout_id = centre.rollout("0.2.0", [100])
    launched = Launched(centre, device)
    await launched.start()
    await launched.until(lambda: entry(centre, rollout_id, device).state == "rolled_back")
    assert [(v, s) for v, s, _ in launched.starts()] == [
        ("0.1.0", "factory"),
        *[("0.2.0", "a")] * 3,  # --max-starts 3
        ("0.1.0", "factory"),
    ]
    assert entry(centre, rollout_id, device).reason.startswith("crash_loop")
    assert await launched.stop() == 0
    assert (device.directory / "software" / "current").readlink().name == "factory"
    assert untouched(device) == before


async def test_a_version_that_never_confirms_is_stopped_and_rolled_back_even_after_kill_9(
    centre: Centre,
) -> None:
    """The new version runs but its updater never says it is healthy (it is what broke): the
    launcher stops it once its health window has passed. The launcher is killed with SIGKILL
    twice on the way (its daemon dies with it, and the next launcher starts one daemon only)."""
    device = centre.enrol()
    before = untouched(device)
    add_probe_release(centre, "0.2.0", "silent")
    rollout_id = centre.rollout("0.2.0", [100])
    with centre.sessions.begin() as session:
        session.execute(update(Rollout).values(health_window_s=8))
    launched = Launched(centre, device)
    await launched.start()
    await launched.until(lambda: len(launched.starts()) == 2)
    trial = launched.starts()[-1]
    assert trial[:2] == ("0.2.0", "a")
    assert await launched.stop(signal.SIGKILL) == -signal.SIGKILL
    for _ in range(200):
        if not alive(trial[2]):
            break
        await asyncio.sleep(0.05)
    assert not alive(trial[2]), "the daemon outlived its launcher"
    await launched.start()
    await launched.until(lambda: len(launched.starts()) == 3)
    second = launched.starts()[-1]
    assert second[:2] == ("0.2.0", "a")  # still on trial: its second start
    assert await launched.stop(signal.SIGKILL) == -signal.SIGKILL
    await launched.start()
    await launched.until(lambda: entry(centre, rollout_id, device).state == "rolled_back")
    starts = launched.starts()
    # The third launcher starts the trial once more or, when the window passed meanwhile,
    # rolls it back before starting anything.
    assert [(v, s) for v, s, _ in starts[:3]] == [("0.1.0", "factory"), *[("0.2.0", "a")] * 2]
    assert [(v, s) for v, s, _ in starts[3:-1]] in ([], [("0.2.0", "a")])
    assert starts[-1][:2] == ("0.1.0", "factory")
    assert sum(alive(pid) for _, _, pid in starts) == 1  # only the factory daemon runs
    assert "rolled back by the launcher" in entry(centre, rollout_id, device).reason
    with centre.sessions() as session:
        states = list(session.scalars(select(UpdateEvent.state).order_by(UpdateEvent.id)))
    assert states[-1] == "rolled_back" and "healthy" not in states
    assert await launched.stop() == 0
    assert untouched(device) == before
