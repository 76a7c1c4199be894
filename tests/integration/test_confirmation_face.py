"""The self-service face check at the centre, on the real PostgreSQL and the real dlib models,
with the public-domain photos of ``tests/fixtures/faces``: the reference is the photo sealed in
a stored record; a selfie of the same man (another photo of him) confirms him online with the
score, another man's face goes to the clerk's manual check with its score and reasons, a
coffee cup asks for a retake (and so does it for a number not on the roll), a person with no
photo on file waits for a clerk, and an attempt that found no free face slot is checked by the
background job. The time each face check took is printed, not asserted."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.confirmation.attempts import pending_attempts, resolve_attempt
from controller.confirmation.campaigns import create_campaign
from controller.confirmation.face_check import FaceCheckJob, FaceSlots, MusterFaceVerifier
from controller.confirmation.roll import import_roll
from controller.confirmation.self_service import FaceService, self_service_router
from controller.db import make_engine, migrate, session_factory
from controller.db.models import (
    ConfirmationEvent,
    ConfirmationSubject,
    SelfServiceAttempt,
)
from muster.clock import VirtualClock
from muster.crypto import generate_upload_key
from tests.fixtures.face_records import face_photo, store_photo_records
from tests.unit.confirmation_world import PEOPLE, at_cst, load_people, write_roll

OBAMA_REFERENCE = face_photo("obama_2012_portrait.jpg")
OBAMA_SELFIE = face_photo("obama_2009_congress.jpg")
BIDEN = face_photo("biden_2010_blue_room.jpg")
COFFEE = face_photo("no_face_coffee.jpg")
REFERENCED = ("a1940", "a1950", "a1952")  # a photo on file; a1958 has none
NOT_ON_ROLL = "110101199003070011"


@pytest.fixture
def sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    yield session_factory(engine)
    engine.dispose()


class World:
    def __init__(self, sessions: sessionmaker[Session], tmp_path: Path) -> None:
        self.clock = VirtualClock(at_cst(2026, 10, 20))
        self.key = generate_upload_key()
        load_people(sessions, tmp_path, self.clock)
        with sessions.begin() as session:
            self.campaign_id = create_campaign(
                session, year=2026, county="320723", clock=self.clock, by="ops"
            ).id
        import_roll(sessions, self.campaign_id, write_roll(tmp_path / "roll.csv"), clock=self.clock)
        with sessions.begin() as session:
            numbers = store_photo_records(
                session,
                self.key,
                {PEOPLE[k].id_number: (PEOPLE[k].township, OBAMA_REFERENCE) for k in REFERENCED},
                at_cst(2026, 5, 1),
            )
        self.records = {k: numbers[PEOPLE[k].id_number] for k in REFERENCED}
        self.slots = FaceSlots(2)
        self.face = FaceService(MusterFaceVerifier(), self.slots, lambda: {1: self.key})


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    return World(sessions, tmp_path)


@pytest.fixture
async def client(sessions: sessionmaker[Session], world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(self_service_router(sessions, world.clock, world.face))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://self.test") as c:
        yield c


async def _post(
    client: httpx.AsyncClient, number: str, selfie: bytes
) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.post(
        "/self-service/confirm",
        data={"id_number": number, "phone": "13900001111"},
        files={"selfie": ("selfie.jpg", selfie, "image/jpeg")},
    )
    return response, time.perf_counter() - started


def _attempt(session: Session, number: str) -> SelfServiceAttempt:
    return session.scalars(
        select(SelfServiceAttempt)
        .where(SelfServiceAttempt.id_number == number)
        .order_by(SelfServiceAttempt.id.desc())
    ).first() or pytest.fail(f"no attempt for {number}")


def _subject(session: Session, world: World, key: str) -> ConfirmationSubject:
    found = session.get(ConfirmationSubject, (world.campaign_id, PEOPLE[key].id_number))
    assert found is not None
    return found


async def test_the_same_man_confirms_another_goes_to_a_clerk_a_cup_asks_for_a_retake(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    timings: dict[str, float] = {}
    obama, timings["obama"] = await _post(client, PEOPLE["a1940"].id_number, OBAMA_SELFIE)
    biden, timings["biden"] = await _post(client, PEOPLE["a1950"].id_number, BIDEN)
    cup, timings["coffee"] = await _post(client, PEOPLE["a1952"].id_number, COFFEE)
    stranger, timings["not on roll"] = await _post(client, NOT_ON_ROLL, OBAMA_SELFIE)
    no_photo, timings["no reference"] = await _post(client, PEOPLE["a1958"].id_number, BIDEN)
    print(
        "\nself-service attempt time incl. face check (s):",
        {k: round(v, 3) for k, v in timings.items()},
    )

    # The identical-answer rule: a match, a mismatch, no photo on file and a number not on the
    # roll read the same words.
    bodies = {r.text for r in (obama, biden, stranger, no_photo)}
    assert all(r.status_code == 200 for r in (obama, biden, stranger, no_photo))
    assert len(bodies) == 1 and 'data-testid="received"' in obama.text
    # The cup: told plainly to retake, nothing about the person.
    assert cup.status_code == 422
    assert "重新拍一张" in cup.text and 'data-field="selfie"' in cup.text
    assert PEOPLE["a1952"].name not in cup.text
    # The same retake for a number not on the roll: the answer says nothing about the roll.
    coffee_stranger, _ = await _post(client, NOT_ON_ROLL, COFFEE)
    assert coffee_stranger.status_code == 422
    assert coffee_stranger.text.replace(NOT_ON_ROLL, "") == cup.text.replace(
        PEOPLE["a1952"].id_number, ""
    )

    with sessions() as session:
        a1940 = _subject(session, world, "a1940")
        assert (a1940.status, a1940.channel, a1940.face_result, a1940.confirmed_by) == (
            "confirmed",
            "self_service",
            "match",
            "self",
        )
        matched = _attempt(session, PEOPLE["a1940"].id_number)
        assert matched.outcome == "face_match" and matched.face_score is not None
        assert (
            matched.face_score <= 0.6
            and matched.face_reference == f"record:{world.records['a1940']}"
        )
        event = session.scalars(
            select(ConfirmationEvent).where(
                ConfirmationEvent.id_number == PEOPLE["a1940"].id_number
            )
        ).all()
        assert any(e.source_id == f"self-service:{matched.id}" for e in event)

        refused = _attempt(session, PEOPLE["a1950"].id_number)
        assert refused.outcome == "manual_check" and refused.resolved_at is None
        assert refused.face_score is not None and refused.face_score > 0.6
        assert "different_person" in refused.face_reasons.split(",")
        assert _subject(session, world, "a1950").status == "to_confirm"

        retake = _attempt(session, PEOPLE["a1952"].id_number)
        assert retake.outcome == "no_face" and retake.selfie is None

        waiting = _attempt(session, PEOPLE["a1958"].id_number)
        assert (waiting.outcome, waiting.face_reasons) == ("manual_check", "no_reference")
        queue = {a.id_number: a for a, _t in pending_attempts(session)}
        assert set(queue) == {PEOPLE["a1950"].id_number, PEOPLE["a1958"].id_number}
        print(
            "scores:",
            {"obama": round(matched.face_score, 4), "biden": round(refused.face_score, 4)},
        )

    # The clerk refuses Biden's selfie for Obama's record; the score stays on the confirmation
    # of the person accepted by hand.
    with sessions.begin() as session:
        resolve_attempt(
            session, refused.id, accept=False, reason="不是本人", by="clerk-a", clock=world.clock
        )
        resolve_attempt(
            session,
            waiting.id,
            accept=True,
            reason="电话核实，本人",
            by="clerk-a",
            clock=world.clock,
        )
    with sessions() as session:
        assert _subject(session, world, "a1950").status == "to_confirm"
        assert _subject(session, world, "a1958").face_result == "manual"
        assert pending_attempts(session) == []


async def test_an_attempt_without_a_free_slot_is_checked_by_the_job(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    with world.slots.slot(wait=True), world.slots.slot(wait=True):  # every slot busy
        response, _ = await _post(client, PEOPLE["a1940"].id_number, OBAMA_SELFIE)
    assert response.status_code == 200 and 'data-testid="received"' in response.text
    with sessions() as session:
        assert _attempt(session, PEOPLE["a1940"].id_number).outcome == "pending_face"
        assert _subject(session, world, "a1940").status == "to_confirm"
    job = FaceCheckJob(
        sessions, MusterFaceVerifier(), world.slots, lambda: {1: world.key}, world.clock
    )
    assert job.run_once() == 1
    assert job.run_once() == 0  # nothing is checked twice
    with sessions() as session:
        assert _attempt(session, PEOPLE["a1940"].id_number).outcome == "face_match"
        assert _subject(session, world, "a1940").status == "confirmed"


async def test_a_reference_that_cannot_be_opened_goes_to_a_clerk(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    world.key = (
        generate_upload_key()
    )  # the upload key on file is not the one the photo was sealed to
    world.clock.advance_now(60)
    response, _ = await _post(client, PEOPLE["a1940"].id_number, OBAMA_SELFIE)
    assert response.status_code == 200
    with sessions() as session:
        attempt = _attempt(session, PEOPLE["a1940"].id_number)
        assert (attempt.outcome, attempt.face_reasons) == ("manual_check", "reference_unreadable")


async def test_hostile_selfies_are_asked_to_be_retaken_and_change_nothing(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    """A JPEG cut short (a dropped upload: OpenCV would fill the missing rows with grey) and a
    PNG whose header claims 20000×20000 pixels (a decompression bomb) reach the face module's
    guard, are answered "take it again" and leave the person to confirm."""
    import struct
    import zlib

    cut = OBAMA_SELFIE[: len(OBAMA_SELFIE) * 2 // 3]
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    ihdr = struct.pack(">I", 13) + b"IHDR" + header
    bomb = b"\x89PNG\r\n\x1a\n" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    for selfie in (cut, bomb):
        response, _ = await _post(client, PEOPLE["a1940"].id_number, selfie)
        assert response.status_code == 422
        assert 'data-field="selfie"' in response.text
    with sessions() as session:
        assert _subject(session, world, "a1940").status == "to_confirm"
        outcomes = {a.outcome for a in session.scalars(select(SelfServiceAttempt))}
        assert outcomes <= {"no_face", "bad_selfie"} and "face_match" not in outcomes


def test_face_time_per_check_on_the_shipped_photos() -> None:
    """The time one check takes here (reference photo and selfie both described, then
    compared), printed for the issue's note, never asserted."""
    verifier = MusterFaceVerifier()
    verifier.verify(OBAMA_REFERENCE, OBAMA_SELFIE)  # the models load once per process
    pairs = {"genuine": OBAMA_SELFIE, "impostor": BIDEN, "no face": COFFEE}
    took = {}
    for name, live in pairs.items():
        started = time.perf_counter()
        verdict = verifier.verify(OBAMA_REFERENCE, live)
        took[name] = (round(time.perf_counter() - started, 3), verdict.match)
    print("\nface check time per verification (s, match):", took)
    assert took["genuine"][1] and not took["impostor"][1] and not took["no face"][1]


def test_a_check_that_fails_goes_to_a_clerk_and_the_job_moves_on(
    world: World, sessions: sessionmaker[Session]
) -> None:
    """An attempt whose person left the roll after sending it (the match cannot be applied) is
    set aside as failed, for a clerk, instead of blocking the job; the attempt behind it is
    still checked."""
    with sessions.begin() as session:
        store_photo_records(
            session, world.key, {NOT_ON_ROLL: ("320723100000", OBAMA_REFERENCE)}, at_cst(2026, 5, 2)
        )
        for number in (NOT_ON_ROLL, PEOPLE["a1940"].id_number):
            session.add(
                SelfServiceAttempt(
                    at=world.clock.now(),
                    address="203.0.113.9",
                    id_number=number,
                    phone="13900001111",
                    outcome="pending_face",
                    campaign_id=world.campaign_id,
                    selfie=OBAMA_SELFIE,
                    selfie_type="jpeg",
                )
            )
    job = FaceCheckJob(
        sessions, MusterFaceVerifier(), world.slots, lambda: {1: world.key}, world.clock
    )
    assert job.run_once() == 2
    with sessions() as session:
        failed = _attempt(session, NOT_ON_ROLL)
        assert (failed.outcome, failed.face_reasons) == ("manual_check", "face_check_failed")
        assert _attempt(session, PEOPLE["a1940"].id_number).outcome == "face_match"
