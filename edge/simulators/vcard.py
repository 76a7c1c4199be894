"""A virtual contact card for pcscd's ``vsmartcard-vpcd`` reader driver.

vpcd listens on TCP (35963 for ``Virtual PCD 00 00``, 35964 for ``... 00 01``); a card is a
client that connects to it. Frames both ways are a 2-byte big-endian length then the payload. A
1-byte payload from vpcd is a control (00 power off, 01 power on, 02 reset, 04 send the ATR);
anything longer is a command APDU, answered with the response APDU. Connecting is inserting
the card, closing is removing it.

The card answers as a third-generation social security card, which carries both the social
security application (``sx1.sh.社会保障``, EF05/EF06 basic information) and a PBOC/EMV debit
application reached through the PPSE, so one card exercises both readers in the driver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
from dataclasses import dataclass, field
from typing import Final

from edge.drivers.pcsc import apdu
from edge.drivers.pcsc.apdu import encode_tlv
from muster.clock import Clock

VPCD_HOST: Final = "127.0.0.1"
VPCD_PORT: Final = 35963
# TS=3B direct convention, T0=80 (TD1 follows, no historical bytes), TD1=80 (TD2 follows,
# T=0), TD2=01 (T=1), TCK=01. Offering T=1 lets pcscd pass case-4 APDUs through whole.
ATR: Final = bytes.fromhex("3B80800101")

_SW_OK: Final = b"\x90\x00"


def _sw(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _bcd_date(date: dt.date) -> bytes:
    return bytes.fromhex(f"{date:%Y%m%d}")


@dataclass(frozen=True)
class SscHolder:
    """What the social security application of the virtual card holds."""

    social_security_number: str = "11010519491231002X"
    name: str = "王秀英"
    sex: str = "2"
    ethnicity: int = 1
    birth_date: dt.date = dt.date(1949, 12, 31)
    card_number: str = "A12345678"
    issue_date: dt.date = dt.date(2021, 7, 1)
    expiry_date: dt.date = dt.date(2031, 7, 1)
    issuer: bytes = bytes.fromhex("156100000000000000000000000000")

    def records(self) -> dict[tuple[int, int], bytes]:
        """(SFI, record) -> record bytes; each record is one TLV tagged with its number."""
        values = {
            0x01: bytes.fromhex("1561000000D15600000000010000000A"),
            0x02: b"\x03",
            0x03: b"3.00",
            0x04: self.issuer,
            0x05: _bcd_date(self.issue_date),
            0x06: _bcd_date(self.expiry_date),
            0x07: self.card_number.encode("ascii"),
            0x08: self.social_security_number.encode("ascii"),
            0x09: self.name.encode("gbk").ljust(30, b"\x00"),
            0x0A: self.sex.encode("ascii"),
            0x0B: bytes((self.ethnicity,)),
            0x0C: bytes.fromhex("110105"),
            0x0D: _bcd_date(self.birth_date),
        }
        return {
            (apdu.SSC_RECORDS[number][0], number): encode_tlv(number, value)
            for number, value in values.items()
        }


@dataclass(frozen=True)
class BankAccount:
    """What the EMV debit application of the virtual card holds."""

    pan: str = "6217000010001234567"
    holder_name: str = "WANG/XIUYING"
    expiry: str = "3107"  # YYMM
    holder_id_number: str = "11010519491231002X"
    aid: bytes = bytes.fromhex("A000000333010101")  # UnionPay debit

    def records(self) -> dict[tuple[int, int], bytes]:
        pan = self.pan + ("F" if len(self.pan) % 2 else "")
        track2 = self.pan + "D" + self.expiry + "2201000000000"
        track2 += "F" if len(track2) % 2 else ""
        record1 = encode_tlv(0x57, bytes.fromhex(track2)) + encode_tlv(
            0x5F20, self.holder_name.encode("ascii")
        )
        record2 = (
            encode_tlv(0x5A, bytes.fromhex(pan))
            + encode_tlv(0x5F24, bytes.fromhex(self.expiry + "31"))
            + encode_tlv(0x9F61, self.holder_id_number.encode("ascii"))
            + encode_tlv(0x9F62, b"\x00")  # ID type: citizen ID card
        )
        return {(1, 1): encode_tlv(0x70, record1), (2, 1): encode_tlv(0x70, record2)}


@dataclass
class CardOS:
    """The card's command interpreter: which application is selected, and its answers."""

    holder: SscHolder | None = field(default_factory=SscHolder)
    account: BankAccount | None = field(default_factory=BankAccount)
    selected: str | None = None

    def reset(self) -> None:
        self.selected = None

    def respond(self, command: bytes) -> bytes:
        if len(command) < 4:
            return _sw(0x6700)
        cla, ins, p1, p2 = command[:4]
        if ins == 0xA4 and p1 == 0x04:
            return self._select(command[5 : 5 + command[4]] if len(command) > 5 else b"")
        if ins == 0xB2:
            return self._read_record(p1, p2 >> 3)
        if cla == 0x80 and ins == 0xA8:
            return self._gpo()
        return _sw(apdu.SW_INS_NOT_SUPPORTED)

    def _select(self, name: bytes) -> bytes:
        if name == apdu.SSC_AID and self.holder is not None:
            self.selected = "ssc"
            return encode_tlv(0x6F, encode_tlv(0x84, name)) + _SW_OK
        if name == apdu.PPSE and self.account is not None:
            self.selected = "ppse"
            entry = encode_tlv(0x4F, self.account.aid) + encode_tlv(0x87, b"\x01")
            directory = encode_tlv(0xBF0C, encode_tlv(0x61, entry))
            return encode_tlv(0x6F, encode_tlv(0x84, name) + encode_tlv(0xA5, directory)) + _SW_OK
        if self.account is not None and name == self.account.aid:
            self.selected = "emv"
            # The PDOL asks for TTQ, amount and currency, as UnionPay applications do.
            pdol = bytes.fromhex("9F66049F02065F2A02")
            proprietary = encode_tlv(0x50, b"UnionPay Debit") + encode_tlv(0x9F38, pdol)
            return encode_tlv(0x6F, encode_tlv(0x84, name) + encode_tlv(0xA5, proprietary)) + _SW_OK
        return _sw(apdu.SW_FILE_NOT_FOUND)

    def _read_record(self, record: int, sfi: int) -> bytes:
        if self.selected == "ssc" and self.holder is not None:
            records = self.holder.records()
        elif self.selected == "emv" and self.account is not None:
            records = self.account.records()
        else:
            return _sw(0x6985)  # conditions of use not satisfied: nothing selected
        data = records.get((sfi, record))
        return _sw(apdu.SW_RECORD_NOT_FOUND) if data is None else data + _SW_OK

    def _gpo(self) -> bytes:
        if self.selected != "emv":
            return _sw(0x6985)
        afl = bytes.fromhex("0801010010010100")
        return encode_tlv(0x77, encode_tlv(0x82, b"\x7c\x00") + encode_tlv(0x94, afl)) + _SW_OK


class VirtualCard:
    """A card that can be inserted into (connected to) and removed from a vpcd slot."""

    def __init__(
        self,
        os: CardOS | None = None,
        host: str = VPCD_HOST,
        port: int = VPCD_PORT,
        *,
        clock: Clock,
    ):
        self.os = os or CardOS()
        self._clock = clock
        self.host = host
        self.port = port
        self.apdus_seen = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, timeout: float = 10.0) -> None:
        """Connect to vpcd (retrying while pcscd is still loading the driver) and serve."""
        deadline = self._clock.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout)
                break
            except ConnectionRefusedError:
                if self._clock.monotonic() >= deadline:
                    raise
                threading.Event().wait(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack(sock)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
        self._thread.start()

    def remove(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @staticmethod
    def _quickack(sock: socket.socket) -> None:
        # Linux clears QUICKACK after some ACKs; without it each APDU waits for a delayed ACK.
        quickack = getattr(socket, "TCP_QUICKACK", None)
        if quickack is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)

    def _recv_exact(self, sock: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                head = self._recv_exact(sock, 2)
                if head is None:
                    return
                payload = self._recv_exact(sock, int.from_bytes(head, "big"))
                self._quickack(sock)
                if payload is None:
                    return
                answer = self._answer(payload)
                if answer is not None:
                    sock.sendall(len(answer).to_bytes(2, "big") + answer)
        except OSError:
            return

    def _answer(self, payload: bytes) -> bytes | None:
        if len(payload) == 1:
            control = payload[0]
            if control in (0x00, 0x01, 0x02):  # power off, power on, reset
                self.os.reset()
                return None
            if control == 0x04:
                return ATR
            return None
        self.apdus_seen += 1
        return self.os.respond(payload)
