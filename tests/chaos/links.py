"""A device's link to the centre in a chaos run: a TCP relay the run can cut (every connection
reset, new ones refused, as when a township's VPN drops) or slow down (latency, and packet loss
in the kernel).

Why not ``tc netem``: this machine's kernel is built without it (``CONFIG_NET_SCH_NETEM`` is not
set and modules cannot be loaded), and the devices dial 127.0.0.1 under certificates that name
it, so a namespace per device would need new certificates and NAT as well. So the latency is
the relay's: every chunk is held ``delay`` seconds (plus jitter) after it arrived before it is
passed on, both ways, without slowing the chunks behind it. The loss is the kernel's: an
nftables table of the run's own drops a share of the packets to and from the relay's port
(``numgen random``), so the real TCP stacks retransmit and stall. A partition drops all of
them: the relay resets its side, but the device hears nothing, neither data nor the reset,
until the link heals, as behind a dead VPN.

Root is needed for nftables; the table is deleted when the run ends (if a killed run left one:
``nft list tables`` then ``nft delete table inet <name>``)."""

from __future__ import annotations

import contextlib
import os
import queue
import random
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence

from tests.fixtures.components import ComponentStartError, free_port, require

__all__ = ["ChaosLink", "PacketLoss"]


class ChaosLink:
    """Listens on 127.0.0.1:``port``, relays to ``target``; ``cut``/``restore``, ``slow``/``heal``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._up = True
        self._delay_s = 0.0
        self._rng = random.Random(self.port)
        self._stop = threading.Event()
        self.cuts = 0
        self._thread = threading.Thread(target=self._accept_loop, name="chaos-link", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self) -> None:
        """Reset every open connection (SO_LINGER 0) and refuse new ones until ``restore``."""
        with self._lock:
            self._up = False
            self.cuts += 1
            open_now = list(self._sockets)
        for sock in open_now:
            _reset(sock)

    def restore(self) -> None:
        with self._lock:
            self._up = True

    def slow(self, delay_s: float) -> None:
        with self._lock:
            self._delay_s = delay_s

    def heal(self) -> None:
        self.slow(0.0)

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self._thread.join(timeout=5)
        self._listener.close()

    def _hold(self) -> float:
        with self._lock:
            delay = self._delay_s
        # A quarter of jitter either way, as a congested link has; order is kept per direction.
        return delay * (0.75 + 0.5 * self._rng.random()) if delay else 0.0

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                up = self._up
            if not up:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
                threading.Thread(
                    target=self._read, args=(source, sink, chunks), daemon=True
                ).start()
                threading.Thread(
                    target=self._write, args=(source, sink, chunks), daemon=True
                ).start()

    def _read(
        self, source: socket.socket, sink: socket.socket, chunks: queue.Queue[tuple[float, bytes]]
    ) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self._hold(), data))
            if not data:
                return

    def _write(
        self, source: socket.socket, sink: socket.socket, chunks: queue.Queue[tuple[float, bytes]]
    ) -> None:
        while True:
            due, data = chunks.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not data:
                break
            try:
                sink.sendall(data)
            except OSError:
                break
        for sock in (source, sink):
            self._forget(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # SHUT_RD wakes the relay's reader without sending a FIN, so the close below is a reset.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class PacketLoss:
    """An nftables table of the run's own: per device, a share of the packets to or from its
    relays' ports dropped (``set_loss``); 0 drops nothing."""

    def __init__(self, device_ports: Sequence[Sequence[int]]) -> None:
        self._nft = require("nft", "for the chaos run's packet loss (apt package nftables)")
        self.table = f"muster_chaos_{os.getpid()}"
        self._ports = [list(p) for p in device_ports]
        self._installed = False
        self._jumped: set[int] = set()

    def _run(self, script: str) -> None:
        result = subprocess.run(
            [self._nft, "-f", "-"], input=script, capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise ComponentStartError(f"nft failed ({result.returncode}): {result.stderr.strip()}")

    def install(self) -> None:
        self._run(
            f"table inet {self.table} {{\n"
            "  chain output { type filter hook output priority 0; policy accept; }\n"
            "}\n"
        )
        self._installed = True

    def set_loss(self, index: int, loss_pct: float) -> None:
        """Drop ``loss_pct`` per cent of device ``index``'s packets (0-based), both ways; 100
        is a black hole (a partition: nothing arrives, nothing is refused)."""
        chain = f"device{index}"
        lines = [
            f"add chain inet {self.table} {chain}",
            f"flush chain inet {self.table} {chain}",
        ]
        # Chains are jumped to once, on first use, so an idle device costs nothing.
        if index not in self._jumped:
            ports = ", ".join(str(p) for p in self._ports[index])
            lines += [
                f"add rule inet {self.table} output tcp dport {{ {ports} }} jump {chain}",
                f"add rule inet {self.table} output tcp sport {{ {ports} }} jump {chain}",
            ]
            self._jumped.add(index)
        share = round(loss_pct * 100)  # per ten thousand
        if share >= 10000:
            lines.append(f"add rule inet {self.table} {chain} drop")
        elif share > 0:
            lines.append(
                f"add rule inet {self.table} {chain} numgen random mod 10000 < {share} drop"
            )
        self._run("\n".join(lines) + "\n")

    def close(self) -> None:
        if self._installed:
            self._installed = False
            self._run(f"delete table inet {self.table}\n")
