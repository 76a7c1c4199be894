"""``muster edge read-card``: the technician's one-shot check of a SAM ID-card reader.

Prints one JSON object per card read. Exit status: 0 read, 3 no card presented within the
timeout, 4 the reader or the card answered with a failure (the status is named), 5 the line
could not be opened, broke, or the reader stayed silent.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any, Final, NoReturn

import click

from edge.drivers.sam.driver import SamReader
from edge.drivers.sam.errors import (
    CardDataError,
    FrameError,
    ReaderBrokenError,
    ReaderTimeoutError,
    StatusError,
    UnsupportedCardError,
)
from edge.drivers.sam.events import CardRead
from edge.drivers.sam.idnumber import check_card
from edge.drivers.sam.protocol import Status
from edge.drivers.sam.textblock import NO_EXPIRY
from muster.clock import Clock, SystemClock
from muster.errors import MusterError

EXIT_NO_CARD: Final = 3
EXIT_READER_FAULT: Final = 4
EXIT_LINE_FAULT: Final = 5
POLL_INTERVAL_S: Final = 0.3  # vendors: find no more often than every 300 ms


def card_json(event: CardRead, today: dt.date) -> dict[str, Any]:
    """The JSON object printed for one read; the number is judged as of ``today``."""
    card = event.card
    check = check_card(card, today=today)
    doc: dict[str, Any] = {
        "name": card.name,
        "sex": card.sex.label,
        "ethnicity": card.ethnicity.name if card.ethnicity else None,
        "birth_date": card.birth_date.isoformat(),
        "address": card.address,
        "id_number": card.id_number,
        "authority": card.authority,
        "valid_from": card.valid_from.isoformat(),
        "valid_to": NO_EXPIRY if card.valid_to is None else card.valid_to.isoformat(),
        "card_type": card.card_type.name.lower(),
        "photo_sha256": event.photo_sha256,
        "id_number_valid": check.valid,
        "read_ms": round(event.read_ms, 1),
    }
    if check.problems:
        doc["id_number_problems"] = [f"{p.zh} / {p.en}" for p in check.problems]
    for extra in ("english_name", "nationality", "permit_number", "issue_count", "card_version"):
        value = getattr(card, extra)
        if value is not None:
            doc[extra] = value
    return doc


def _fail(code: int, message: str) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def _status_name(sw3: int) -> str:
    try:
        return f"{Status(sw3).name} ({sw3:#04x})"
    except ValueError:
        return f"{sw3:#04x}"


def _wait_and_read(reader: SamReader, timeout: float, clock: Clock) -> CardRead:
    deadline = clock.monotonic() + timeout
    while True:
        started = clock.monotonic()
        if reader.find_card():
            return reader.read_found_card(started=started)
        left = deadline - clock.monotonic()
        if left <= 0:
            _fail(
                EXIT_NO_CARD,
                f"{timeout:g} 秒内未检测到证件，请将身份证放到读卡区 / "
                f"no card presented within {timeout:g} s; place the ID card on the reader",
            )
        time.sleep(min(POLL_INTERVAL_S, left))


@click.command("read-card")
@click.option(
    "--port", required=True, help="Reader line: /dev/ttyUSB0, a pty, or socket://HOST:PORT."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to wait for a card to be presented.",
)
@click.option(
    "--repeat", type=click.IntRange(min=1), default=1, show_default=True, help="Reads to do."
)
@click.option(
    "--baud",
    type=click.IntRange(min=1),
    default=115200,
    show_default=True,
    help="serial speed of the reader (the profile's reader.baud)",
)
def read_card(port: str, timeout: float, repeat: int, baud: int) -> None:
    """Read ID cards on a SAM reader and print each as JSON (读取身份证)."""
    clock = SystemClock()
    reader = SamReader(port, clock=clock, baud=baud)
    try:
        reader.open()
        for _ in range(repeat):
            event = _wait_and_read(reader, timeout, clock)
            click.echo(json.dumps(card_json(event, clock.today()), ensure_ascii=False))
    except StatusError as exc:
        _fail(EXIT_READER_FAULT, f"读卡器状态 / reader status {_status_name(exc.sw3)}: {exc}")
    except UnsupportedCardError as exc:
        _fail(EXIT_READER_FAULT, f"证件类型 / card type {exc.flag!r}: {exc}")
    except CardDataError as exc:
        _fail(EXIT_READER_FAULT, f"证件内容无法解析 / card content undecodable: {exc}")
    except FrameError as exc:
        _fail(EXIT_READER_FAULT, f"读卡器应答错误 / garbled reply after retries: {exc}")
    except (ReaderBrokenError, ReaderTimeoutError) as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        _fail(EXIT_LINE_FAULT, f"读卡器连接故障 / reader line fault: {exc}{cause}")
    except MusterError as exc:
        _fail(EXIT_READER_FAULT, f"错误 / error: {exc}")
    finally:
        reader.close()
