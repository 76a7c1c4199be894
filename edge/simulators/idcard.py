"""A simulated SAM ID-card reader on a real transport: an asyncio TCP server speaking the SAM
protocol, which pyserial opens as ``socket://HOST:PORT`` (and socat can turn into a pty).

Every reply is paced at the wire rate of the configured baud (10 bit times per byte, 8N1), and
so is the command before it, so a read takes as long as it would on a serial line. Faults can be
scripted per command: no card, read failure, corrupt checksum, truncated reply, slow reader.

The answers come from :mod:`edge.drivers.sam.protocol`, the same codec the driver uses; a card is
a :class:`SimCard` built from a JSON file (see ``edge/simulators/cards/``).

Over 400 lines because it is the reader's other side in full: the same frame protocol answered
as a real SAM module would, with its cards, faults and timing, tested against the driver.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
import hashlib
import json
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

from edge.drivers.sam import protocol
from edge.drivers.sam.errors import ChecksumError, FrameError
from edge.drivers.sam.protocol import CardBlocks, Command, CommandFrame, Status
from edge.drivers.sam.textblock import (
    CardText,
    CardType,
    Sex,
    encode_text_block,
    ethnicity,
)
from muster.clock import Clock

CARDS_DIR: Final = Path(__file__).resolve().parent / "cards"
DEFAULT_CARD: Final = CARDS_DIR / "resident.json"
BITS_PER_BYTE: Final = 10  # 8N1: start bit, 8 data bits, stop bit
# Write a reply in pieces of this size, each when its last byte would be off the wire.
_PACE_CHUNK: Final = 64
_ADDRESS_LEN: Final = 70
DEFAULT_SAM_ID: Final = bytes.fromhex("05000100f5e10500c8e0df2a15cd5b07")

_T = TypeVar("_T")


class Fault(enum.Enum):
    NO_CARD = "no-card"  # find answers 0x80 although a card is present
    READ_FAILURE = "read-failure"  # the read answers 0x41
    CORRUPT_CHECKSUM = "corrupt-checksum"  # the reply's CHK byte is wrong
    TRUNCATED = "truncated"  # only the first half of the reply is sent
    SLOW = "slow"  # the reply starts late


COMMAND_NAMES: Final[dict[str, Command]] = {
    "reset": Command.RESET_SAM,
    "status": Command.SAM_STATUS,
    "sam-id": Command.READ_SAM_ID,
    "find": Command.FIND_CARD,
    "select": Command.SELECT_CARD,
    "read": Command.READ_TEXT_PHOTO,
    "read-fp": Command.READ_TEXT_PHOTO_FINGERPRINT,
    "address": Command.READ_NEW_ADDRESS,
}

# The command a fault hits when the rule names none: the one where it is meaningful.
_DEFAULT_TARGET: Final[dict[Fault, Command | None]] = {
    Fault.NO_CARD: Command.FIND_CARD,
    Fault.READ_FAILURE: Command.READ_TEXT_PHOTO,
    Fault.CORRUPT_CHECKSUM: None,
    Fault.TRUNCATED: None,
    Fault.SLOW: None,
}


@dataclass
class FaultRule:
    """Apply ``fault`` to the next ``times`` replies to ``command`` (None: any; for ever)."""

    fault: Fault
    command: Command | None = None
    times: int | None = None

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """``KIND[:COMMAND[:TIMES]]``, e.g. ``corrupt-checksum:read:1`` or ``slow``."""
        parts = spec.split(":")
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"fault {spec!r} is not KIND[:COMMAND[:TIMES]]")
        try:
            fault = Fault(parts[0])
        except ValueError:
            kinds = ", ".join(f.value for f in Fault)
            raise ValueError(f"unknown fault {parts[0]!r}; known: {kinds}") from None
        command = _DEFAULT_TARGET[fault]
        if len(parts) > 1 and parts[1] not in ("", "any"):
            if parts[1] not in COMMAND_NAMES:
                names = ", ".join(COMMAND_NAMES)
                raise ValueError(f"unknown command {parts[1]!r}; known: any, {names}")
            command = COMMAND_NAMES[parts[1]]
        elif len(parts) > 1:
            command = None
        times = None
        if len(parts) > 2 and parts[2]:
            if not parts[2].isdigit() or int(parts[2]) < 1:
                raise ValueError(f"fault count {parts[2]!r} must be a positive whole number")
            times = int(parts[2])
        return cls(fault, command, times)

    def matches(self, command: Command | None) -> bool:
        return self.times != 0 and (self.command is None or self.command is command)


@dataclass(frozen=True)
class SimCard:
    """What a simulated card holds: the chip's blocks, ready to send."""

    text: CardText
    photo: bytes
    fingerprint: bytes = b""
    new_address: str | None = None
    serial: bytes = b"\x00" * 8

    @property
    def blocks(self) -> CardBlocks:
        return CardBlocks(encode_text_block(self.text), self.photo)


def _date(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


def card_from_dict(doc: dict[str, Any]) -> SimCard:
    """A :class:`SimCard` from the JSON shape of ``edge/simulators/cards/*.json``."""
    try:
        card_type = CardType[doc.get("card_type", "RESIDENT").upper()]
        valid_to = doc["valid_to"]
        text = CardText(
            card_type=card_type,
            name=doc["name"],
            sex=Sex(str(doc["sex"])),
            birth_date=_date(doc["birth_date"]),
            id_number=doc["id_number"],
            valid_from=_date(doc["valid_from"]),
            valid_to=None if valid_to == "长期" else _date(valid_to),
            ethnicity=ethnicity(doc["ethnicity"]) if doc.get("ethnicity") else None,
            address=doc.get("address"),
            authority=doc.get("authority"),
            english_name=doc.get("english_name"),
            nationality=doc.get("nationality"),
            permit_number=doc.get("permit_number"),
            issue_count=doc.get("issue_count"),
            card_version=doc.get("card_version"),
        )
        if "photo_base64" in doc:
            photo = base64.b64decode(doc["photo_base64"], validate=True)
        else:
            photo = _stand_in_photo(doc["id_number"])
        if len(photo) != protocol.PHOTO_LEN:
            raise ValueError(f"photo is {len(photo)} bytes, a card holds {protocol.PHOTO_LEN}")
        fingerprint = base64.b64decode(doc.get("fingerprint_base64", ""), validate=True)
        if len(fingerprint) not in protocol.FINGERPRINT_LENS:
            raise ValueError(f"fingerprint block of {len(fingerprint)} bytes is not 0, 512, 1024")
        serial = bytes.fromhex(doc.get("serial", "00" * 8))
        # Prove the card fits its chip now rather than on the first read.
        encode_text_block(text)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"card description is invalid: {exc!r}") from exc
    return SimCard(text, photo, fingerprint, doc.get("new_address"), serial)


def load_card(path: str | Path) -> SimCard:
    return card_from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _stand_in_photo(seed: str) -> bytes:
    # WLT cannot be produced without the vendor's encoder; a deterministic block of the right
    # size stands in, different per card so tests can tell photos apart.
    out = b""
    counter = 0
    while len(out) < protocol.PHOTO_LEN:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return out[: protocol.PHOTO_LEN]


@dataclass
class _Answer:
    frame: bytes
    fault: Fault | None = None


@dataclass
class IdCardSimulator:
    """The simulated reader: a SAM, maybe a card in its field, and a script of faults.

    ``insert``, ``remove`` and ``add_fault`` may be called from any thread.
    """

    card: SimCard | None
    baud: int = 115200
    sam_id: bytes = DEFAULT_SAM_ID
    slow_s: float = 1.0
    faults: list[FaultRule] = field(default_factory=list)
    # Paces the wire; the CLI and the integration tests hand in the real clock.
    clock: Clock = field(kw_only=True, repr=False)
    commands_seen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _next_baud: int | None = field(default=None, init=False, repr=False)

    def insert(self, card: SimCard) -> None:
        with self._lock:
            self.card = card

    def remove(self) -> None:
        with self._lock:
            self.card = None

    def add_fault(self, rule: FaultRule) -> None:
        with self._lock:
            self.faults.append(rule)

    def byte_time(self) -> float:
        return BITS_PER_BYTE / self.baud

    # ---- the SAM's behaviour, sans-I/O ---------------------------------------------------

    def _take_fault(self, command: Command | None) -> Fault | None:
        with self._lock:
            for rule in self.faults:
                if rule.matches(command):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.fault
        return None

    def answer(self, frame: CommandFrame) -> _Answer:
        """The reply to one command, with the fault applied to it, if any."""
        with self._lock:
            self.commands_seen += 1
            card = self.card
        command = frame.command
        fault = self._take_fault(command)
        reply = self._reply(frame, command, card, fault)
        if fault is Fault.CORRUPT_CHECKSUM:
            reply = reply[:-1] + bytes((reply[-1] ^ 0xFF,))
        elif fault is Fault.TRUNCATED:
            reply = reply[: len(reply) // 2]
        return _Answer(reply, fault)

    def _reply(
        self,
        frame: CommandFrame,
        command: Command | None,
        card: SimCard | None,
        fault: Fault | None,
    ) -> bytes:
        ok, reply = Status.SUCCESS, protocol.encode_reply
        if command is None:
            if frame.cmd == protocol.SET_BAUD_CMD:
                return self._set_baud(frame)
            return reply(Status.UNKNOWN_COMMAND)
        if frame.data:
            return reply(Status.LENGTH_ERROR)
        if command in (Command.RESET_SAM, Command.SAM_STATUS):
            return reply(ok)
        if command is Command.READ_SAM_ID:
            return reply(ok, self.sam_id)
        if card is None or fault is Fault.NO_CARD:
            return reply(_NO_CARD_STATUS[command])
        if command is Command.FIND_CARD:
            return reply(Status.CARD_FOUND, b"\x00" * 4)
        if command is Command.SELECT_CARD:
            return reply(ok, card.serial)
        if command is Command.READ_NEW_ADDRESS:
            if not card.new_address:
                return reply(Status.NO_CONTENT)
            encoded = card.new_address.encode("utf-16-le")
            return reply(ok, encoded + b" \x00" * ((_ADDRESS_LEN - len(encoded)) // 2))
        if fault is Fault.READ_FAILURE:
            return reply(Status.READ_FAILED)
        blocks = card.blocks
        if command is Command.READ_TEXT_PHOTO_FINGERPRINT:
            blocks = CardBlocks(blocks.text, blocks.photo, card.fingerprint)
        return reply(ok, protocol.build_read_data(blocks))

    def _set_baud(self, frame: CommandFrame) -> bytes:
        codes = {code: baud for baud, code in protocol.BAUD_CODES.items()}
        if len(frame.data) != 1 or frame.data[0] not in codes:
            return protocol.encode_reply(Status.PARAMETER_ERROR)
        # The new rate applies from the next command, after this reply went out at the old one.
        self._next_baud = codes[frame.data[0]]
        return protocol.encode_reply(Status.SUCCESS)

    # ---- the wire ------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection (one serial line) until the host closes it."""
        decoder = protocol.CommandDecoder()
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    return
                arrived = self.clock.monotonic()
                decoder.feed(data)
                while True:
                    try:
                        frame = decoder.next_command()
                    except FrameError as exc:
                        status = (
                            Status.CHECKSUM_ERROR
                            if isinstance(exc, ChecksumError)
                            else Status.LENGTH_ERROR
                        )
                        answer = _Answer(protocol.encode_reply(status))
                        frame_len = 10
                    else:
                        if frame is None:
                            break
                        answer = self.answer(frame)
                        frame_len = len(frame.data) + 10
                    # The command itself takes wire time before the SAM can act on it.
                    arrived += frame_len * self.byte_time()
                    if answer.fault is Fault.SLOW:
                        arrived += self.slow_s
                    arrived = await self._send_paced(writer, answer.frame, arrived)
                    if self._next_baud is not None:
                        self.baud, self._next_baud = self._next_baud, None
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    async def _send_paced(self, writer: asyncio.StreamWriter, data: bytes, start: float) -> float:
        """Write ``data`` as a serial line at ``self.baud`` would deliver it, from ``start``;
        return when its last byte is off the wire."""
        start = max(start, self.clock.monotonic())
        byte_time = self.byte_time()
        sent = 0
        while sent < len(data):
            chunk = data[sent : sent + _PACE_CHUNK]
            sent += len(chunk)
            delay = start + sent * byte_time - self.clock.monotonic()
            if delay > 0:
                await self.clock.sleep(delay)
            writer.write(chunk)
            await writer.drain()
        return start + len(data) * byte_time


_NO_CARD_STATUS: Final[dict[Command, Status]] = {
    Command.FIND_CARD: Status.NO_CARD,
    Command.SELECT_CARD: Status.SELECT_FAILED,
    Command.READ_TEXT_PHOTO: Status.READ_FAILED,
    Command.READ_TEXT_PHOTO_FINGERPRINT: Status.READ_FAILED,
    Command.READ_NEW_ADDRESS: Status.READ_FAILED,
}


class SimulatorServer:
    """An :class:`IdCardSimulator` listening on TCP; ``unplug`` drops every line, ``plug`` listens
    again on the same port, as a USB reader pulled out and put back."""

    def __init__(self, simulator: IdCardSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._lines: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._lines.add(task)
        try:
            await self.simulator.handle(reader, writer)
        finally:
            self._lines.discard(task)

    async def plug(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def unplug(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._lines):
            task.cancel()
        for task in list(self._lines):
            with suppress(asyncio.CancelledError):
                await task
        if server is not None:
            await server.wait_closed()


class SimulatorThread:
    """A :class:`SimulatorServer` on its own event loop in a daemon thread, for callers that are
    not async (the technician's CLI tests, the benchmark) or that must not share its loop."""

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="idcard-sim", daemon=True
        )

    @property
    def url(self) -> str:
        return self.server.url

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        future: Future[_T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout)

    def start(self) -> None:
        self._thread.start()
        self.call(self.server.plug())

    def stop(self) -> None:
        self.call(self.server.unplug())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextmanager
def running(
    simulator: IdCardSimulator, host: str = "127.0.0.1", port: int = 0
) -> Iterator[SimulatorThread]:
    """Run ``simulator`` on a TCP port in a background thread for the ``with`` block."""
    thread = SimulatorThread(SimulatorServer(simulator, host, port))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def _newest_name(code: str, key: str) -> str:
    from stdnum import numdb

    info = {k: v for _part, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    # Entries carry validity spans like "[1985-]泰山区"; the last one is the current name.
    return info.get(key, "").split(",")[-1].split("]")[-1]


def place_names(county: str) -> tuple[str, str, str]:
    """(province, city, county) names for a 6-digit county code, from python-stdnum's table."""
    city = _newest_name(county[:4] + "00", "county")
    return (
        _newest_name(county, "province"),
        "" if city in ("市辖区", "县") else city,
        _newest_name(county, "county"),
    )


def synthetic_cards(county: str, count: int, *, seed: int = 0) -> list[SimCard]:
    """Resident cards of ``count`` plausible people registered in ``county``, for a reader that
    sees a queue of visitors: valid ID numbers, names, addresses and issuing authorities."""
    import random

    from muster.synthetic import person

    rng = random.Random(seed)
    people = []
    for _ in range(count):
        p = person(rng, county)
        people.append(
            {
                "name": p.name,
                "sex": p.sex,
                "birth_date": p.birth_date.isoformat(),
                "id_number": p.id_number,
                "ethnicity": rng.choices(["01", "02", "03", "05", "08"], [92, 2, 2, 2, 2])[0],
            }
        )
    return _resident_cards(people, rng)


def visitor_cards(people: list[dict[str, str]], *, seed: int = 0) -> list[SimCard]:
    """The resident cards of these people (rows of the initial-data import format: name,
    id_number, sex as 1/2 or 男/女, birth_date, ethnicity), in a seeded order: the township's
    own people coming to the collection point."""
    import random

    rng = random.Random(seed)
    shuffled = list(people)
    rng.shuffle(shuffled)
    return _resident_cards(shuffled, rng)


def load_visitors(path: Path, township: str | None = None) -> list[dict[str, str]]:
    """The people of an initial-data CSV (as ``muster sim dataset`` writes it, Chinese or key
    headers), of ``township`` only when given; each ID number once."""
    import csv

    from muster.initial_data import HEADERS

    if path.suffix.lower() != ".csv":
        raise ValueError(
            f"{path}: give the visitors as a .csv file (muster sim dataset --out X.csv)"
        )
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read the visitors: {exc}") from exc
    people: dict[str, dict[str, str]] = {}
    for row in rows:
        person = {
            HEADERS[k.strip()]: (v or "").strip()
            for k, v in row.items()
            if k and k.strip() in HEADERS
        }
        if not {"name", "id_number", "sex", "birth_date"} <= person.keys():
            raise ValueError(
                f"{path}: needs the columns 姓名, 公民身份号码, 性别, 出生日期 (and 乡镇代码 for --township)"
            )
        if township is None or person.get("township_code") == township:
            people.setdefault(person["id_number"].upper(), person)
    return list(people.values())


def _resident_cards(people: list[dict[str, str]], rng: Any) -> list[SimCard]:
    cards = []
    for p in people:
        number = p["id_number"].upper()
        county = number[:6]
        province, city, county_part = place_names(county)
        place = province + (city if city != province else "") + county_part
        # Districts have a branch of the city's bureau; counties a bureau of their own.
        authority = (
            f"{city}公安局{county_part[:-1]}分局"
            if county_part.endswith("区") and city
            else f"{county_part}公安局"
        )
        birth = dt.date.fromisoformat(p["birth_date"])
        issued = max(birth.replace(year=birth.year + 16), dt.date(2005, 1, 1))
        issued += dt.timedelta(days=rng.randrange(0, 3650))
        long_term = (issued.year - birth.year) >= 46  # issued at 46+: valid for life
        cards.append(
            card_from_dict(
                {
                    "name": p["name"],
                    "sex": {"男": "1", "女": "2"}.get(p["sex"], p["sex"]),
                    "ethnicity": p.get("ethnicity") or "01",
                    "birth_date": birth.isoformat(),
                    "address": f"{place}{rng.choice('东西南北中')}关路{rng.randrange(1, 300)}号",
                    "id_number": number,
                    "authority": authority,
                    "valid_from": issued.isoformat(),
                    "valid_to": "长期"
                    if long_term
                    else issued.replace(year=issued.year + 20).isoformat(),
                    "serial": f"{rng.getrandbits(64):016x}",
                }
            )
        )
    return cards


async def present_in_turn(
    simulator: IdCardSimulator,
    cards: list[SimCard],
    *,
    dwell_s: float,
    gap_s: float,
    rounds: int | None = None,
) -> None:
    """A queue of visitors: each card lies on the reader for ``dwell_s``, then the field is empty
    for ``gap_s``, then the next; round and round, or ``rounds`` times, after which the field
    stays empty."""
    done = 0
    while rounds is None or done < rounds:
        done += 1
        for card in cards:
            simulator.insert(card)
            await simulator.clock.sleep(dwell_s)
            simulator.remove()
            await simulator.clock.sleep(gap_s)
