"""The QR code on the admin's codes page is what a device enrols from: the code with this
controller's address, enrolment port and CA fingerprint, read back by the same rule
``muster provision enroll --qr-image`` uses."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from controller.devices.enrolment import enrolment_payload
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from muster.clock import VirtualClock
from muster.enrolment_codes import ca_fingerprint, parse_code, parse_ticket
from tests.unit.admin_world import NOW, TOWNSHIP, World, bearer, build_world


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('codes') / 'controller.db'}"
    migrate(url)
    yield session_factory(make_engine(url))


@pytest.fixture(scope="module")
def world(sessions: sessionmaker[Session]) -> World:
    return build_world(sessions)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ControllerPki:
    return ensure_controller_pki(tmp_path_factory.mktemp("pki"), ["centre.example"], now=NOW)


@pytest.fixture(scope="module")
def ca_pem(pki: ControllerPki) -> bytes:
    return Path(pki.ca_cert_path).read_bytes()


@pytest.fixture
async def client(
    sessions: sessionmaker[Session], world: World, ca_pem: bytes
) -> AsyncIterator[httpx.AsyncClient]:
    ticket = functools.partial(
        enrolment_payload, host="centre.example", port=7443, ca_cert_pem=ca_pem
    )
    app = create_admin_app(sessions, clock=VirtualClock(NOW), enrolment_ticket=ticket)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        yield http
    app.state.password_workers.close()


async def test_the_qr_carries_what_a_device_needs_to_enrol(
    client: httpx.AsyncClient, world: World, ca_pem: bytes
) -> None:
    made = await client.post(
        "/api/v1/enrollment-codes",
        json={"township": TOWNSHIP["370902"], "profile": "simulator", "valid_hours": 24},
        headers=bearer(world.tokens["county"]),
    )
    assert made.status_code == 201, made.text
    body = made.json()
    ticket = parse_ticket(body["qr_text"])
    assert ticket.code == parse_code(body["code"])
    assert (ticket.host, ticket.port) == ("centre.example", 7443)
    assert ticket.ca_sha256 == ca_fingerprint(ca_pem)
    assert "<svg" in body["qr_svg"] and "MUSTER-ENROL" not in body["qr_svg"]
