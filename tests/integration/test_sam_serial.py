"""The serial SAM driver against the simulator on real transports: pyserial's ``socket://`` and a
pty bridged to the simulator by socat."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.card_cli import read_card
from edge.drivers.sam import errors
from edge.drivers.sam.driver import SamReader, watch
from edge.drivers.sam.events import (
    CardRead,
    CardRemoved,
    FaultKind,
    ReaderEvent,
    ReaderFault,
    ReaderReady,
)
from edge.drivers.sam.idnumber import check_card
from edge.drivers.sam.textblock import CardType, Sex
from edge.simulators.idcard import (
    CARDS_DIR,
    DEFAULT_CARD,
    FaultRule,
    IdCardSimulator,
    SimulatorServer,
    SimulatorThread,
    load_card,
    running,
)
from muster.clock import SystemClock
from muster.profiles import ReaderProfile
from tests.fixtures.components import require, terminate

RESIDENT = load_card(DEFAULT_CARD)


@pytest.fixture
def simulator() -> IdCardSimulator:
    return IdCardSimulator(RESIDENT, clock=SystemClock())


@pytest.fixture
def sim(simulator: IdCardSimulator) -> Iterator[SimulatorThread]:
    with running(simulator) as thread:
        yield thread


class PtyBridge:
    """socat joining a pty (what a USB serial reader looks like) to the simulator's TCP port."""

    def __init__(self, link: Path, tcp_port: int) -> None:
        self.link = link
        self.tcp_port = tcp_port
        self.socat = require("socat", "to give the simulated reader a pty")
        self.process: subprocess.Popen[bytes] | None = None

    def plug(self) -> None:
        self.process = subprocess.Popen(
            [
                self.socat,
                f"pty,raw,echo=0,link={self.link}",
                f"tcp:127.0.0.1:{self.tcp_port}",
            ],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not self.link.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"socat did not create {self.link}")
            time.sleep(0.01)

    def unplug(self) -> None:
        if self.process is not None:
            terminate(self.process)
            self.process = None
        deadline = time.monotonic() + 5
        while self.link.exists() and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture
def pty(sim: SimulatorThread, tmp_path: Path) -> Iterator[PtyBridge]:
    bridge = PtyBridge(tmp_path / "ttySAM0", sim.server.port)
    bridge.plug()
    yield bridge
    bridge.unplug()


class _FastClock(SystemClock):
    """Real time, but waits are cut to 10 ms: the profile forbids polling faster than 300 ms,
    and the tests need not wait that out."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(min(seconds, 0.01))


FAST = _FastClock()
CLOCK = SystemClock()


async def _next(events: AsyncIterator[ReaderEvent], kind: type, limit: int = 400) -> ReaderEvent:
    for _ in range(limit):
        event = await asyncio.wait_for(anext(events), timeout=10)
        if isinstance(event, kind):
            return event
    raise AssertionError(f"no {kind.__name__} within {limit} events")


# ---- one-shot reads -------------------------------------------------------------------------


def test_read_over_socket_url(sim: SimulatorThread) -> None:
    """find + select + read over socket:// returns the card's fields, photo and SAM id."""
    with SamReader(sim.url, clock=CLOCK) as reader:
        assert str(reader.sam_id()) == "05.01-00385525-0719315144-0123456789"
        reader.sam_status()
        event = reader.read_card()
    card = event.card
    assert (card.name, card.sex, card.id_number) == ("王秀英", Sex.FEMALE, "11010519491231002X")
    assert card.ethnicity is not None and card.ethnicity.name == "汉"
    assert card.valid_to is None  # 长期
    assert event.photo == RESIDENT.photo and len(event.photo) == 1024
    # The driver hands the card on as read; the consumer judges it with its own today.
    assert check_card(card, today=dt.date(2026, 11, 23)).valid is True


def test_read_over_a_pty(pty: PtyBridge) -> None:
    """The same read works through a pty device path, as a USB reader appears."""
    with SamReader(str(pty.link), clock=CLOCK) as reader:
        event = reader.read_card()
    assert event.card.id_number == "11010519491231002X"


@pytest.mark.parametrize("path", sorted(CARDS_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_every_card_type_reads(simulator: IdCardSimulator, path: Path) -> None:
    """Resident cards, residence permits and both foreigner's cards read and decode."""
    card = load_card(path)
    simulator.insert(card)
    with running(simulator) as thread, SamReader(thread.url, clock=CLOCK) as reader:
        event = reader.read_card()
        address = reader.read_new_address()
    assert event.card == card.text
    assert address == (card.new_address or "")


def test_fingerprint_read(simulator: IdCardSimulator, sim: SimulatorThread) -> None:
    """The read with fingerprints returns the third block."""
    with SamReader(sim.url, clock=CLOCK) as reader:
        assert reader.find_card()
        reader.select_card()
        blocks = reader.read_blocks(fingerprint=True)
    assert blocks.fingerprint == b""
    assert blocks.photo == RESIDENT.photo


def test_no_card(simulator: IdCardSimulator, sim: SimulatorThread) -> None:
    """With the field empty, find says so and a read raises NoCardError."""
    simulator.remove()
    with SamReader(sim.url, clock=CLOCK) as reader:
        assert reader.find_card() is False
        with pytest.raises(errors.NoCardError):
            reader.read_card()


def test_corrupt_checksum_once_is_resent(simulator: IdCardSimulator, sim: SimulatorThread) -> None:
    """A reply with a bad CHK makes the driver resend the command, and the read succeeds."""
    simulator.add_fault(FaultRule.parse("corrupt-checksum:read:1"))
    with SamReader(sim.url, clock=CLOCK) as reader:
        event = reader.read_card()
    assert event.card.name == "王秀英"
    assert simulator.commands_seen == 4  # find, select, read, read again


def test_truncated_reply_times_out_and_is_resent(
    simulator: IdCardSimulator, sim: SimulatorThread
) -> None:
    """Half a reply then silence: the attempt times out and the resend reads the card."""
    simulator.add_fault(FaultRule.parse("truncated:read:1"))
    with SamReader(sim.url, timeout_s=0.4, clock=CLOCK) as reader:
        event = reader.read_card()
    assert event.card.name == "王秀英"
    assert simulator.commands_seen == 4


def test_persistent_corruption_gives_up_with_checksum_error(
    simulator: IdCardSimulator, sim: SimulatorThread
) -> None:
    """A reader that keeps garbling gets retries + 1 attempts, then ChecksumError."""
    simulator.add_fault(FaultRule.parse("corrupt-checksum:find"))
    with SamReader(sim.url, retries=2, clock=CLOCK) as reader, pytest.raises(errors.ChecksumError):
        reader.find_card()
    assert simulator.commands_seen == 3


def test_slow_reader_times_out(simulator: IdCardSimulator, sim: SimulatorThread) -> None:
    """A reader slower than the timeout raises ReaderTimeoutError after its retries."""
    simulator.slow_s = 0.6
    simulator.add_fault(FaultRule.parse("slow:find"))
    reader = SamReader(sim.url, timeout_s=0.2, retries=1, clock=CLOCK)
    with reader, pytest.raises(errors.ReaderTimeoutError):
        reader.find_card()


def test_read_failure_status(simulator: IdCardSimulator, sim: SimulatorThread) -> None:
    """A 0x41 read failure is CardReadError carrying the status byte."""
    simulator.add_fault(FaultRule.parse("read-failure"))
    with SamReader(sim.url, clock=CLOCK) as reader, pytest.raises(errors.CardReadError) as caught:
        reader.read_card()
    assert caught.value.sw3 == 0x41


def test_open_failure_is_broken_not_closed() -> None:
    """A reader that is not there raises ReaderBrokenError with the pyserial cause attached."""
    reader = SamReader("/dev/does-not-exist-ttyUSB9", clock=CLOCK)
    with pytest.raises(errors.ReaderBrokenError) as caught:
        reader.open()
    assert caught.value.__cause__ is not None


def test_unplugged_mid_session_is_broken(sim: SimulatorThread) -> None:
    """A line that goes away under an open reader raises ReaderBrokenError, not ClosedError."""
    with SamReader(sim.url, clock=CLOCK) as reader:
        assert reader.find_card()
        sim.call(sim.server.unplug())
        with pytest.raises(errors.ReaderBrokenError):
            reader.find_card()


# ---- the polling watcher --------------------------------------------------------------------


async def test_watch_reports_insert_read_and_removal(
    simulator: IdCardSimulator, sim: SimulatorThread
) -> None:
    """An unattended reader yields Ready, then one CardRead per presented card, then
    CardRemoved when the card leaves; a card left in the field is not read twice."""
    simulator.remove()
    profile = ReaderProfile(port=sim.url)
    events = watch(profile, clock=FAST)
    try:
        ready = await _next(events, ReaderReady)
        assert isinstance(ready, ReaderReady) and ready.sam_id.startswith("05.01-")
        simulator.insert(RESIDENT)
        first = await anext(events)
        assert isinstance(first, CardRead) and first.card.name == "王秀英"
        reads_before = simulator.commands_seen
        await asyncio.sleep(0.2)
        simulator.remove()
        removed = await anext(events)
        assert isinstance(removed, CardRemoved) and removed.port == sim.url
        assert simulator.commands_seen > reads_before  # it kept polling meanwhile
        simulator.insert(load_card(CARDS_DIR / "hmt-permit.json"))
        second = await anext(events)
        assert isinstance(second, CardRead)
        assert second.card.card_type is CardType.HMT_RESIDENCE_PERMIT
    finally:
        await events.aclose()


async def test_watch_reports_a_failed_read_and_tries_again(
    simulator: IdCardSimulator, sim: SimulatorThread
) -> None:
    """A read failure becomes a ReaderFault naming status 0x41; the next poll reads the card."""
    simulator.add_fault(FaultRule.parse("read-failure:read:1"))
    events = watch(ReaderProfile(port=sim.url), clock=FAST)
    try:
        fault = await _next(events, ReaderFault)
        assert isinstance(fault, ReaderFault)
        assert (fault.kind, fault.status) == (FaultKind.STATUS, 0x41)
        assert isinstance(await anext(events), CardRead)
    finally:
        await events.aclose()


async def test_watch_reopens_an_unplugged_socket_reader(sim: SimulatorThread) -> None:
    """Pulling the reader yields a BROKEN fault; plugging it back yields Ready and reads again,
    all within one watch: the daemon never restarts."""
    events = watch(ReaderProfile(port=sim.url), clock=FAST, reopen_after_s=(0.05, 0.2))
    try:
        await _next(events, CardRead)
        await asyncio.to_thread(sim.call, sim.server.unplug())
        fault = await _next(events, ReaderFault)
        assert isinstance(fault, ReaderFault) and fault.kind is FaultKind.BROKEN
        await asyncio.sleep(0.3)  # a few failed reopen attempts while it is out
        await asyncio.to_thread(sim.call, sim.server.plug())
        await _next(events, ReaderReady)
        again = await _next(events, CardRead)
        assert isinstance(again, CardRead) and again.card.name == "王秀英"
    finally:
        await events.aclose()


async def test_watch_reopens_an_unplugged_pty_reader(pty: PtyBridge) -> None:
    """The same for a pty device that disappears and comes back under the same path."""
    events = watch(ReaderProfile(port=str(pty.link)), clock=FAST, reopen_after_s=(0.05, 0.2))
    try:
        await _next(events, CardRead)
        await asyncio.to_thread(pty.unplug)
        fault = await _next(events, ReaderFault)
        assert isinstance(fault, ReaderFault) and fault.kind is FaultKind.BROKEN
        await asyncio.to_thread(pty.plug)
        await _next(events, ReaderReady)
        assert isinstance(await _next(events, CardRead), CardRead)
    finally:
        await events.aclose()


async def test_watch_keeps_the_event_loop_free(sim: SimulatorThread) -> None:
    """While the watcher reads a card (about 120 ms on the wire), other tasks keep running:
    serial I/O is on worker threads."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    events = watch(ReaderProfile(port=sim.url), clock=FAST)
    try:
        await _next(events, ReaderReady)
        before = ticks
        await _next(events, CardRead)
        assert ticks - before > 10
    finally:
        task.cancel()
        await events.aclose()


# ---- the technician's command ---------------------------------------------------------------


def _invoke(*args: str) -> tuple[int, list[str], str]:
    result = CliRunner().invoke(read_card, list(args))
    return result.exit_code, result.stdout.splitlines(), result.stderr


def test_cli_prints_one_json_object_per_read(sim: SimulatorThread) -> None:
    """read-card --repeat 2 prints two JSON objects with every field and exits 0."""
    code, lines, _ = _invoke("--port", sim.url, "--repeat", "2", "--timeout", "2")
    assert code == 0 and len(lines) == 2
    doc = json.loads(lines[0])
    assert set(doc) >= {
        "name", "sex", "ethnicity", "birth_date", "address", "id_number", "authority",
        "valid_from", "valid_to", "card_type", "photo_sha256", "id_number_valid", "read_ms",
    }  # fmt: skip
    assert doc["name"] == "王秀英" and doc["valid_to"] == "长期" and doc["sex"] == "女"
    assert doc["ethnicity"] == "汉" and doc["birth_date"] == "1949-12-31"
    assert doc["card_type"] == "resident" and doc["id_number_valid"] is True
    assert len(doc["photo_sha256"]) == 64 and doc["read_ms"] > 0


def test_cli_exits_3_when_no_card_is_presented(
    simulator: IdCardSimulator, sim: SimulatorThread
) -> None:
    """No card within --timeout: exit 3 with a Chinese and English message on stderr."""
    simulator.remove()
    code, lines, err = _invoke("--port", sim.url, "--timeout", "0.5")
    assert code == 3 and lines == []
    assert "未检测到证件" in err and "no card presented" in err


def test_cli_names_the_reader_status_on_a_fault(
    simulator: IdCardSimulator, sim: SimulatorThread
) -> None:
    """A read failure exits non-zero naming READ_FAILED (0x41)."""
    simulator.add_fault(FaultRule.parse("read-failure"))
    code, _, err = _invoke("--port", sim.url, "--timeout", "1")
    assert code == 4
    assert "READ_FAILED" in err and "0x41" in err and "读卡失败" in err


def test_cli_reports_a_missing_reader() -> None:
    """A port nothing listens on exits 5 saying the line could not be opened."""
    code, _, err = _invoke("--port", "socket://127.0.0.1:1", "--timeout", "0.5")
    assert code == 5 and "cannot open reader" in err


async def test_watch_reports_a_reader_missing_at_start_once(tmp_path: Path) -> None:
    """A reader absent when the daemon starts is reported by one BROKEN fault, not one per
    reopen attempt, and is picked up when it appears."""
    simulator = IdCardSimulator(RESIDENT, clock=SystemClock())
    thread = SimulatorThread(SimulatorServer(simulator))
    thread.start()
    url = thread.url
    thread.call(thread.server.unplug())
    events = watch(ReaderProfile(port=url), clock=FAST, reopen_after_s=(0.02, 0.05))
    try:
        fault = await anext(events)
        assert isinstance(fault, ReaderFault) and fault.kind is FaultKind.BROKEN
        await asyncio.sleep(0.3)  # several failed attempts, none of them yielded
        await asyncio.to_thread(thread.call, thread.server.plug())
        assert isinstance(await anext(events), ReaderReady)
    finally:
        await events.aclose()
        thread.stop()
