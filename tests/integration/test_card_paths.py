"""Every reader's path to the console (issue 14): a resident card on the SAM reader simulator
behind a pty (socat), and a social security card in a real pcscd's virtual reader (vpcd), each
read by the daemon's hardware part, handed through the one card handoff and taken by the
console's "read card" endpoint into the clerk's draft. Nothing stays in the handoff after."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from edge.card_reads import CardHandoff
from edge.console.app import ConsoleServices, create_console_app
from edge.console.drafts import DraftStore
from edge.console.search import PeopleSearch
from edge.hardware import Hardware
from edge.licence_guard import Verdict
from edge.simulators.idcard import IdCardSimulator, running, synthetic_cards
from edge.simulators.vcard import VirtualCard
from muster.clock import SystemClock, VirtualClock
from muster.passwords import hash_password
from muster.profiles import CameraProfile, FirmwareProfile, PcscProfile, ReaderProfile
from tests.fixtures.components import require, terminate
from tests.fixtures.pcscd import VIRTUAL_READER
from tests.unit.test_console import NOW, PASSWORD, accounts

CLOCK = SystemClock()


@pytest.fixture
def pty_reader(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A SAM reader simulator with a resident's card on it, on a pty as a USB reader would be;
    yields (pty path, the card's ID number)."""
    (card,) = synthetic_cards("370902", 1, seed=14)
    socat = require("socat", "to give the simulated reader a pty")
    link = tmp_path / "ttySAM0"
    with running(IdCardSimulator(card, clock=CLOCK)) as sim:
        bridge = subprocess.Popen(
            [socat, f"pty,raw,echo=0,link={link}", f"tcp:127.0.0.1:{sim.server.port}"],
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 5
            while not link.exists():
                assert bridge.poll() is None and time.monotonic() < deadline, "no pty from socat"
                time.sleep(0.01)
            yield str(link), card.text.id_number
        finally:
            terminate(bridge)


def profile(*, sam_port: str | None = None, pcsc: bool = False) -> FirmwareProfile:
    return FirmwareProfile(
        name="t",
        model="t",
        kind="fixed",
        reader=ReaderProfile(kind="sam", port=sam_port) if sam_port else ReaderProfile(kind="none"),
        pcsc=PcscProfile(enabled=pcsc, reader_filter=VIRTUAL_READER),
        camera=CameraProfile(kind="none"),
    )


@asynccontextmanager
async def console_on(
    tmp_path: Path, hardware: Hardware, run: str
) -> AsyncIterator[tuple[httpx.AsyncClient, CardHandoff, DraftStore]]:
    """The console wired as the daemon wires it: the hardware offers reads to the handoff the
    console takes them from; the hardware task ``run`` runs meanwhile."""
    handoff = CardHandoff(CLOCK)
    hardware.handoff = handoff
    drafts = DraftStore(tmp_path / "drafts.sqlite3", tmp_path / "drafts.key")
    services = ConsoleServices(
        accounts=accounts(tmp_path / "console", hash_password(PASSWORD), VirtualClock(NOW)),
        drafts=drafts,
        people=PeopleSearch(lambda: [], lambda: 1),
        township_code="370902001000",
        township_name="泰山区 001 乡镇",
        verdict=lambda: Verdict(True, "", "", 30),
        seal=lambda record, attachments: None,
        already_sealed=lambda record_id: False,
        clock=CLOCK,
        read_card=handoff.take,
    )
    task = asyncio.create_task(getattr(hardware, run)())
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_console_app(services)),
        base_url="http://127.0.0.1",
        follow_redirects=True,
    )
    try:
        yield client, handoff, drafts
    finally:
        await client.aclose()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        drafts.close()


async def read_into_new_draft(client: httpx.AsyncClient) -> tuple[httpx.Response, str]:
    page = await client.post("/login", data={"username": "li", "password": PASSWORD})
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text
    csrf = match.group(1)
    created = await client.post("/records", data={"csrf": csrf, "category": "retired_soldier"})
    record_id = created.url.path.rsplit("/", 1)[-1]
    response = await client.post(f"/records/{record_id}/card", data={"csrf": csrf})
    return response, record_id


async def test_a_card_on_the_serial_sam_reader_reaches_the_console(
    tmp_path: Path, pty_reader: tuple[str, str]
) -> None:
    """The resident card on the pty reader fills the draft's identity; the handoff is empty
    once the console took it."""
    port, id_number = pty_reader
    hardware = Hardware(profile(sam_port=port), lambda kind, message, details: None, clock=CLOCK)
    async with console_on(tmp_path, hardware, "run_reader") as (client, handoff, drafts):
        response, record_id = await read_into_new_draft(client)
        assert response.status_code == 200, response.text
        assert "已读取身份证" in response.text
        draft = drafts.get(record_id)
        assert draft is not None and draft.person["id_number"] == id_number
        assert draft.card["id_number"] == id_number
        assert handoff.held is None
        assert hardware.last_card_read is not None


async def test_a_social_security_card_over_pcsc_reaches_the_console(
    tmp_path: Path, virtual_card: VirtualCard
) -> None:
    """A social security card inserted in pcscd's virtual reader fills the draft with its
    holder (the social security number is the citizen ID number); the handoff is empty after."""
    hardware = Hardware(profile(pcsc=True), lambda kind, message, details: None, clock=CLOCK)
    async with console_on(tmp_path, hardware, "run_pcsc") as (client, handoff, drafts):
        await asyncio.to_thread(virtual_card.insert)
        response, record_id = await read_into_new_draft(client)
        assert response.status_code == 200, response.text
        assert "已读取社会保障卡" in response.text
        draft = drafts.get(record_id)
        assert draft is not None
        assert (draft.person["name"], draft.person["id_number"]) == ("王秀英", "11010519491231002X")
        assert (draft.person["sex"], draft.person["birth_date"]) == ("2", "1949-12-31")
        assert handoff.held is None
