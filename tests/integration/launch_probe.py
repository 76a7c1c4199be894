"""A stand-in daemon for the launcher tests, copied by them as ``muster_probe`` into the factory
install and into each release's wheel with ``VERSION`` and ``MODE`` set. It logs each start
(version, slot, pid) to ``STARTS_LOG``, then by ``MODE``: ``good`` runs the real updater
against the controller (confirms itself healthy when on trial, takes an offered update and exits
for the launcher to restart it), ``crash`` exits 3 at once, ``silent`` runs but never confirms.

Usage: python -m muster_probe STATE_DIR ENDPOINT STARTS_LOG
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import grpc

from edge.updates.slots import LAUNCHED_ENV
from edge.updates.updater import Updater
from muster.clock import SystemClock

VERSION = "0.1.0"
MODE = "good"


def main() -> int:
    state_dir, endpoint = Path(sys.argv[1]), sys.argv[2]
    with Path(sys.argv[3]).open("a") as log:
        log.write(f"{VERSION} {os.environ.get(LAUNCHED_ENV, '-')} {os.getpid()}\n")
    if MODE == "crash":
        return 3
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if MODE == "silent":
        while True:
            signal.pause()
    identity = state_dir / "identity"

    def channel() -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(identity / "ca.pem").read_bytes(),
            private_key=(identity / "key.pem").read_bytes(),
            certificate_chain=(identity / "cert.pem").read_bytes(),
        )
        return grpc.aio.secure_channel(endpoint, credentials)

    restarted = asyncio.Event()

    async def restart() -> None:
        restarted.set()

    async def run() -> int:
        updater = Updater(
            state_dir,
            profile="simulator",
            factory_version="0.1.0",
            channel=channel,
            clock=SystemClock(),
            restart=restart,
            count_starts=LAUNCHED_ENV not in os.environ,
            disk_margin_bytes=0,
        )
        await updater.boot()
        await updater.confirm_healthy()  # this stand-in is healthy as soon as it runs
        while not restarted.is_set():
            await updater.check_once()
            if not restarted.is_set():
                await asyncio.sleep(0.2)
        return 0

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
