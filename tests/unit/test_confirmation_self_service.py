"""The public self-service page under attack, in-process over a migrated SQLite database: huge
uploads, files that are not photos, wrong ID checksums, floods from one address and on one
number, and enumeration (the answer for a number on the roll and one that is not are the same).
Every attempt is logged; a refused one stores no photo and confirms nobody."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.confirmation.attempts import ADDRESS_LIMIT, ID_LIMIT, SELFIE_MAX_BYTES
from controller.confirmation.campaigns import create_campaign
from controller.confirmation.roll import import_roll
from controller.db import make_engine, migrate, session_factory
from controller.db.models import ConfirmationSubject, SelfServiceAttempt
from muster.clock import VirtualClock
from tests.fixtures.face_records import face_photo
from tests.unit.confirmation_world import (
    COUNTY,
    PEOPLE,
    at_cst,
    camera_jpeg,
    id_number,
    load_people,
    write_roll,
)

URL = "/self-service/confirm"
JPEG = face_photo("obama_2009_congress.jpg")  # a real face: the centre looks for one


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(at_cst(2026, 10, 20))


@pytest.fixture
def sessions(tmp_path: Path, clock: VirtualClock) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    made = session_factory(engine)
    load_people(made, tmp_path, clock)
    with made.begin() as session:
        campaign_id = create_campaign(session, year=2026, county=COUNTY, clock=clock).id
    import_roll(made, campaign_id, write_roll(tmp_path / "roll.csv"), clock=clock)
    yield made
    engine.dispose()


@pytest.fixture
async def client(
    sessions: sessionmaker[Session], clock: VirtualClock
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app(sessions, clock=clock, upload_keys=lambda: {})
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://confirm.test") as c:
        yield c


async def _post(
    client: httpx.AsyncClient,
    number: str,
    phone: str = "13912345678",
    photo: bytes = JPEG,
    name: str = "selfie.jpg",
) -> httpx.Response:
    return await client.post(
        URL,
        data={"id_number": number, "phone": phone},
        files={"selfie": (name, photo, "image/jpeg")},
    )


def _attempts(sessions: sessionmaker[Session]) -> list[SelfServiceAttempt]:
    with sessions() as session:
        return list(session.scalars(select(SelfServiceAttempt).order_by(SelfServiceAttempt.id)))


async def test_the_page_is_public_mobile_and_asks_for_a_live_selfie(
    client: httpx.AsyncClient,
) -> None:
    """No login; a phone-sized page in Chinese (English with ?lang=en) with the camera input."""
    page = await client.get(URL)
    assert page.status_code == 200
    assert 'name="viewport"' in page.text and "公民身份号码" in page.text
    assert 'accept="image/*" capture="user"' in page.text
    english = await client.get(URL + "?lang=en")
    assert "ID number" in english.text


async def test_an_accepted_attempt_waits_for_its_face_check(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    """The selfie is kept; with no photo on file to compare it with it waits for a clerk's
    manual check, and nobody is confirmed yet."""
    number = PEOPLE["b1970"].id_number
    response = await _post(client, number)
    assert response.status_code == 200
    assert "人脸核验完成后确认生效" in response.text
    (attempt,) = _attempts(sessions)
    assert attempt.outcome == "manual_check" and attempt.selfie == JPEG
    assert attempt.face_reasons == "no_reference"
    assert attempt.address == "203.0.113.9"
    with sessions() as session:
        subject = session.scalars(
            select(ConfirmationSubject).where(ConfirmationSubject.id_number == number)
        ).one()
        assert subject.status == "to_confirm"


async def test_enumeration_learns_nothing(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    """A number on the roll and a valid number that is not get the same page, word for word, and
    no name, township or status of anyone appears; only the roll's attempt keeps a photo."""
    on_roll = await _post(client, PEOPLE["a1950"].id_number)
    stranger = id_number(date(1951, 1, 1), 5, "110101")
    off_roll = await _post(client, stranger)
    assert on_roll.status_code == off_roll.status_code == 200

    def body(r: httpx.Response) -> str:
        return r.text.replace(PEOPLE["a1950"].id_number, "X").replace(stranger, "X")

    assert body(on_roll) == body(off_roll)
    for person in PEOPLE.values():
        assert person.name not in on_roll.text
    assert "320723100" not in on_roll.text
    outcomes = [(a.outcome, a.selfie is not None) for a in _attempts(sessions)]
    assert outcomes == [("manual_check", True), ("not_open", False)]


@pytest.mark.parametrize(
    ("number", "phone", "photo", "field", "status"),
    [
        (
            PEOPLE["a1950"].id_number[:-1] + ("0" if PEOPLE["a1950"].id_number[-1] != "0" else "1"),
            "13912345678",
            JPEG,
            "id_number",
            422,
        ),
        ("12345", "13912345678", JPEG, "id_number", 422),
        ("<script>alert(1)</script>", "13912345678", JPEG, "id_number", 422),
        (PEOPLE["a1950"].id_number, "12345", JPEG, "phone", 422),
        (PEOPLE["a1950"].id_number, "13912345678", b"%PDF-1.7 not a photo", "selfie", 422),
        (PEOPLE["a1950"].id_number, "13912345678", b"\xff\xd8\xff" + b"\0" * 5000, "selfie", 422),
        (PEOPLE["a1950"].id_number, "13912345678", camera_jpeg(size=(60, 80)), "selfie", 422),
        (PEOPLE["a1950"].id_number, "13912345678", b"", "selfie", 422),
    ],
    ids=["checksum", "short", "markup", "phone", "pdf", "broken-jpeg", "tiny", "empty"],
)
async def test_bad_input_is_named_logged_and_changes_nothing(
    client: httpx.AsyncClient,
    sessions: sessionmaker[Session],
    number: str,
    phone: str,
    photo: bytes,
    field: str,
    status: int,
) -> None:
    response = await _post(client, number, phone, photo)
    assert response.status_code == status
    assert f'data-field="{field}"' in response.text
    assert "<script>alert" not in response.text
    (attempt,) = _attempts(sessions)
    assert attempt.outcome.startswith("bad_") and attempt.selfie is None


async def test_a_huge_upload_is_refused_unread(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    """Past the limit the body is not parsed or stored: 413, logged, no photo kept."""
    huge = b"\xff\xd8\xff" + b"\0" * (SELFIE_MAX_BYTES + 200_000)
    response = await _post(client, PEOPLE["a1950"].id_number, photo=huge)
    assert response.status_code == 413
    assert 'data-field="selfie"' in response.text
    (attempt,) = _attempts(sessions)
    assert attempt.outcome == "selfie_too_large" and attempt.selfie is None


async def test_a_body_that_is_no_form_is_judged_empty(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    response = await client.post(
        URL, content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 422
    assert [a.outcome for a in _attempts(sessions)] == ["bad_id"]


async def test_one_number_is_throttled(
    client: httpx.AsyncClient, sessions: sessionmaker[Session], clock: VirtualClock
) -> None:
    """Past the day's tries on one number: 429 with Retry-After; a day later it is open again."""
    number = PEOPLE["a1952"].id_number
    for _ in range(ID_LIMIT[0]):
        assert (await _post(client, number)).status_code == 200
    refused = await _post(client, number)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "尝试次数过多" in refused.text
    clock.advance_now(ID_LIMIT[1].total_seconds())
    assert (await _post(client, number)).status_code == 200
    assert [a.outcome for a in _attempts(sessions)].count("rate_id") == 1


async def test_one_address_trying_many_numbers_is_throttled(
    client: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    """Enumeration from one address: wrong and right numbers alike count, then 429 for all."""
    for seq in range(ADDRESS_LIMIT[0]):
        await _post(client, id_number(date(1950, 1, 1), seq))
    refused = await _post(client, PEOPLE["a1950"].id_number)
    assert refused.status_code == 429
    with sessions() as session:
        logged = session.scalar(select(func.count()).select_from(SelfServiceAttempt))
    assert logged == ADDRESS_LIMIT[0] + 1
    assert _attempts(sessions)[-1].outcome == "rate_address"


async def test_the_address_limit_counts_the_citizen_behind_our_proxy_and_not_a_forgery(
    sessions: sessionmaker[Session], clock: VirtualClock
) -> None:
    """Attack: an enumerator sends a new X-Forwarded-For with every try so each looks like
    another address. Not from our proxy, the header is ignored and the socket address is
    limited. Behind our trusted proxy each citizen counts as their own address, so one
    neighbour's tries do not lock the whole town out (before, all of them were the proxy)."""
    app = create_admin_app(
        sessions, clock=clock, upload_keys=lambda: {}, trusted_proxies=["10.0.0.1"]
    )
    direct = httpx.ASGITransport(app=app, client=("198.51.100.77", 5555))
    async with httpx.AsyncClient(transport=direct, base_url="http://confirm.test") as c:
        for seq in range(ADDRESS_LIMIT[0]):
            c.headers["X-Forwarded-For"] = f"192.0.2.{seq}"
            await _post(c, id_number(date(1950, 1, 1), seq))
        c.headers["X-Forwarded-For"] = "192.0.2.250"
        assert (await _post(c, PEOPLE["a1950"].id_number)).status_code == 429
    assert {a.address for a in _attempts(sessions)} == {"198.51.100.77"}

    proxy = httpx.ASGITransport(app=app, client=("10.0.0.1", 443))
    async with httpx.AsyncClient(transport=proxy, base_url="http://confirm.test") as c:
        c.headers["X-Forwarded-For"] = "203.0.113.50"
        for seq in range(ADDRESS_LIMIT[0]):
            await _post(c, id_number(date(1951, 1, 1), seq))
        assert (await _post(c, PEOPLE["a1950"].id_number)).status_code == 429
        c.headers["X-Forwarded-For"] = "203.0.113.51"  # a neighbour, through the same proxy
        assert (await _post(c, PEOPLE["b1970"].id_number)).status_code == 200
    counted = {a.address for a in _attempts(sessions)}
    assert counted == {"198.51.100.77", "203.0.113.50", "203.0.113.51"}
