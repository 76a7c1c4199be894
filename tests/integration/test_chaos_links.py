"""The chaos run's device links (``tests/chaos/links.py``) on real sockets and the real kernel:
a slowed, lossy link still delivers every byte in order; a cut resets what is open and refuses
what is new until restored; the nftables table of a run goes away with it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest

from tests.chaos.links import ChaosLink, PacketLoss
from tests.fixtures.components import require


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue

            def echo(conn: socket.socket = conn) -> None:
                with conn, contextlib.suppress(OSError):
                    while data := conn.recv(65536):
                        conn.sendall(data)

            threading.Thread(target=echo, daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


def _needs_root() -> None:
    """Like every real component, missing is a failure, not a skip (tests/fixtures/components)."""
    require("nft", "by the chaos links' packet drops (apt package nftables)")
    if os.geteuid() != 0:
        pytest.fail("the chaos links' packet drops need root (nftables tables)", pytrace=False)


def _refused(port: int) -> bool:
    """A new connection through the link is reset (at connect, or at the first read) or
    closed without a byte."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            return sock.recv(10) == b""
    except ConnectionResetError:
        return True


def _round_trip(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_a_slow_lossy_link_delivers_every_byte_in_order(echo_port: int) -> None:
    _needs_root()
    link = ChaosLink("127.0.0.1", echo_port)
    loss = PacketLoss([[link.port]])
    loss.install()
    try:
        link.slow(0.05)
        loss.set_loss(0, 20.0)
        payload = bytes(range(256)) * 800  # 200 KiB, many segments, some of them dropped
        with socket.create_connection(("127.0.0.1", link.port), timeout=60) as sock:
            assert _round_trip(sock, payload) == payload
            loss.set_loss(0, 0.0)
            link.heal()
            assert _round_trip(sock, b"after") == b"after"
    finally:
        loss.close()
        link.close()


def test_a_delayed_chunk_is_not_there_at_once(echo_port: int) -> None:
    """The delay is the link's, not the test's: right after sending nothing has come back."""
    link = ChaosLink("127.0.0.1", echo_port)
    try:
        link.slow(3.0)
        with socket.create_connection(("127.0.0.1", link.port), timeout=30) as sock:
            sock.sendall(b"ping")
            sock.settimeout(0.1)
            with pytest.raises(TimeoutError):
                sock.recv(10)
            sock.settimeout(30)
            assert sock.recv(10) == b"ping"
    finally:
        link.close()


def test_a_black_hole_stalls_a_connection_that_resumes_when_it_heals(echo_port: int) -> None:
    """A partition drops every packet: the client hears nothing (no reset), and the same TCP
    connection carries on once the link heals."""
    _needs_root()
    link = ChaosLink("127.0.0.1", echo_port)
    loss = PacketLoss([[link.port]])
    loss.install()
    try:
        with socket.create_connection(("127.0.0.1", link.port), timeout=30) as sock:
            assert _round_trip(sock, b"before") == b"before"
            loss.set_loss(0, 100.0)
            sock.sendall(b"during")
            sock.settimeout(0.5)
            with pytest.raises(TimeoutError):
                sock.recv(10)
            loss.set_loss(0, 0.0)
            sock.settimeout(30)
            assert sock.recv(10) == b"during"
    finally:
        loss.close()
        link.close()


def test_a_cut_resets_open_connections_and_refuses_new_until_restored(echo_port: int) -> None:
    link = ChaosLink("127.0.0.1", echo_port)
    try:
        with socket.create_connection(("127.0.0.1", link.port), timeout=10) as sock:
            assert _round_trip(sock, b"hello") == b"hello"
            link.cut()
            with pytest.raises((ConnectionResetError, BrokenPipeError)):
                sock.sendall(b"x")
                sock.recv(10)
                sock.sendall(b"y")
        assert _refused(link.port)
        link.restore()
        with socket.create_connection(("127.0.0.1", link.port), timeout=10) as again:
            assert _round_trip(again, b"back") == b"back"
    finally:
        link.close()


def test_a_link_to_a_dead_service_resets_the_client_and_keeps_serving() -> None:
    """Hostile case: nothing listens behind the link; the client sees a reset, the link lives."""
    dead = socket.create_server(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    link = ChaosLink("127.0.0.1", port)
    try:
        for _ in range(3):
            assert _refused(link.port)
    finally:
        link.close()


def test_the_runs_nftables_table_goes_with_it() -> None:
    _needs_root()
    loss = PacketLoss([[40001, 40002], [40003]])
    loss.install()
    try:
        loss.set_loss(1, 35.5)
        listed = subprocess.run(
            ["nft", "list", "table", "inet", loss.table], capture_output=True, text=True
        ).stdout
        assert "40003" in listed and "numgen random mod 10000 < 3550" in listed
        assert "40001" not in listed  # a device never slowed gets no rule
        loss.set_loss(1, 0.0)
        listed = subprocess.run(
            ["nft", "list", "table", "inet", loss.table], capture_output=True, text=True
        ).stdout
        assert "drop" not in listed
        loss.set_loss(0, 100.0)  # a partition: every packet dropped, no numgen
        listed = subprocess.run(
            ["nft", "list", "table", "inet", loss.table], capture_output=True, text=True
        ).stdout
        assert "40001" in listed and "drop" in listed and "numgen" not in listed
    finally:
        loss.close()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert loss.table not in tables
