"""A device process for the update tests: the real :class:`edge.updates.updater.Updater` against
a real controller's data port, in its own process so a test can kill it with SIGKILL at any step.

Usage: python -m tests.integration.update_device STATE_DIR ENDPOINT [--hang-at STEP [--hang-after N]]

Each start is a boot of the device: ``boot()``; if a new version is on trial its own
``start.py`` runs as a real child process (a crashing release crashes this process too, exit 1);
then update checks until nothing more is offered. The restart after a switch or a rollback
continues in the same process as the next boot. With ``--hang-at`` the process writes
``STATE_DIR/hung`` and sleeps when it reaches that step the N-th time, for the test to kill it.
Prints the running version as its last line and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import grpc

from edge.updates.updater import Updater
from muster.clock import SystemClock


class Restart(Exception):
    pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("endpoint")
    parser.add_argument("--hang-at", default="")
    parser.add_argument("--hang-after", type=int, default=1)
    parser.add_argument("--profile", default="simulator")
    parser.add_argument("--factory-version", default="0.1.0")
    args = parser.parse_args()
    identity = args.state_dir / "identity"
    seen = {"n": 0}

    def observe(step: str) -> None:
        if step == args.hang_at:
            seen["n"] += 1
            if seen["n"] >= args.hang_after:
                (args.state_dir / "hung").write_text(step)
                time.sleep(3600)

    def channel() -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(identity / "ca.pem").read_bytes(),
            private_key=(identity / "key.pem").read_bytes(),
            certificate_chain=(identity / "cert.pem").read_bytes(),
        )
        return grpc.aio.secure_channel(args.endpoint, credentials)

    async def restart() -> None:
        raise Restart

    async def run() -> str:
        updater = Updater(
            args.state_dir,
            profile=args.profile,
            factory_version=args.factory_version,
            channel=channel,
            clock=SystemClock(),
            restart=restart,
            observer=observe,
            disk_margin_bytes=0,
        )
        for _boot in range(10):
            try:
                state = await updater.boot()
                if state.phase == "switched":
                    start = updater.slots.root / "current" / "start.py"
                    child = await asyncio.create_subprocess_exec(sys.executable, str(start))
                    if await child.wait():
                        raise SystemExit(1)  # the new version crashed on start
                    await updater.confirm_healthy()
                while True:
                    result = await updater.check_once()
                    if result in ("none", "failed_before", "deferred", "watching"):
                        break
                    if result.startswith("refused"):
                        break
                return updater.slots.running_version()
            except Restart:
                continue
        raise SystemExit(2)

    print(asyncio.run(run()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
