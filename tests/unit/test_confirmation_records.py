"""Sealed confirmation records (``confirmation/1``): sealed on the device like a record, opened
at ingest and applied once through ``steps.apply_confirmation`` (a resend, or the same record
sealed again, is a duplicate and changes nothing), a death reported at a visit goes to the
deaths path, and every hostile or broken record is refused with its reason, writing nothing."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.confirmation.campaigns import create_campaign
from controller.confirmation.device_records import KINDS
from controller.confirmation.roll import import_roll
from controller.db.models import ConfirmationEvent, ConfirmationSubject
from controller.devices.pki_store import ControllerPki
from controller.records.ingest import Ingestor
from muster.clock import VirtualClock
from muster.confirmation import ConfirmationError
from muster.confirmation_record import SCHEMA_VERSION, parse_confirmation_record
from muster.crypto import DeviceKey, generate_device_key, seal_record, upload_public_from_bytes
from muster.v1 import data_pb2
from tests.unit.confirmation_world import PEOPLE, TOWNSHIP_A, at_cst, load_people, write_roll
from tests.unit.test_enrollment import enrol_directly

Ack = data_pb2.RecordAck
AT = at_cst(2026, 10, 20)


def body(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "record_id": str(uuid.uuid4()),
        "campaign_id": 1,
        "year": 2026,
        "township_code": TOWNSHIP_A,
        "channel": "home_visit",
        "id_number": PEOPLE["a1940"].id_number,
        "name": PEOPLE["a1940"].name,
        "face": {
            "outcome": "match",
            "score": 0.41,
            "threshold": 0.6,
            "liveness_passed": True,
            "liveness_challenge": "turn",
            "frames": 3,
        },
        "checked": {"name": True, "id_number": True, "phone": True, "address": True},
        "phone": "13812345678",
        "address": "灌云县伊山镇某村 3 组",
        "living_situation": "与儿子同住，身体尚可",
        "device_id": "dev",
        "clerk": "clerk1",
        "at": AT.isoformat(),
    }
    record.update(changes)
    return record


def as_bytes(record: dict[str, Any]) -> bytes:
    import json

    return json.dumps(record, ensure_ascii=False).encode()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        (
            {"face": {"outcome": "match", "score": 0.7, "threshold": 0.6, "liveness_passed": True}},
            "阈值",
        ),
        ({"face": {"outcome": "match", "score": 0.3, "threshold": 0.6}}, "活体"),
        ({"face": {"outcome": "manual", "manual_reason": " "}}, "理由"),
        ({"face": {"outcome": "no_match", "score": 0.9}}, "face.outcome"),
        ({"face": None}, "人脸核验"),
        ({"id_number": "320723194003020110"}, "公民身份号码"),
        ({"channel": "self_service"}, "channel"),
        ({"at": "2026-10-20T10:00:00"}, "at"),
        ({"living_situation": "x" * 20000}, "上限"),
        ({"extra": 1}, "extra"),
        ({"death": {"death_date": "2027-01-01"}}, "晚于今天"),
    ],
)
def test_a_broken_confirmation_is_refused_with_its_reason(
    changes: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfirmationError, match=words):
        parse_confirmation_record(as_bytes(body(**changes)), today=date(2026, 10, 20))


class World:
    def __init__(self, sessions: sessionmaker[Session], pki: ControllerPki, tmp_path: Path) -> None:
        clock = VirtualClock(AT)
        load_people(sessions, tmp_path, clock)
        with sessions.begin() as session:
            self.campaign_id = create_campaign(
                session, year=2026, county="320723", clock=clock, by="ops"
            ).id
        import_roll(sessions, self.campaign_id, write_roll(tmp_path / "roll.csv"), clock=clock)
        self.key: DeviceKey = generate_device_key()
        response = enrol_directly(sessions, pki, self.key, township=TOWNSHIP_A, now=AT)
        self.device_id = response.device_id
        self.upload = response.upload_keys[0].x25519_public_key
        self.ingestor = Ingestor(sessions, pki.upload_keys, clock, kinds=KINDS)
        self.sessions = sessions

    def seal(self, **changes: Any) -> data_pb2.SealedRecord:
        record = body(**{"campaign_id": self.campaign_id, "device_id": self.device_id, **changes})
        return seal_record(
            as_bytes(record),
            record_id=record["record_id"],
            device_id=self.device_id,
            schema_version=SCHEMA_VERSION,
            upload_key=upload_public_from_bytes(self.upload),
            key_version=1,
            signing_key=self.key,
            now=AT,
        )

    def send(self, *sealed: data_pb2.SealedRecord) -> list[data_pb2.RecordAck]:
        return self.ingestor.ingest_batch(self.device_id, list(sealed))

    def subject(self, key: str) -> ConfirmationSubject:
        with self.sessions() as session:
            found = session.get(ConfirmationSubject, (self.campaign_id, PEOPLE[key].id_number))
            assert found is not None
            session.expunge(found)
            return found

    def events(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(ConfirmationEvent)) or 0


@pytest.fixture
def world(sessions: sessionmaker[Session], pki: ControllerPki, tmp_path: Path) -> World:
    return World(sessions, pki, tmp_path)


def test_a_home_visit_confirms_once_however_often_it_arrives(world: World) -> None:
    sealed = world.seal()
    assert [a.status for a in world.send(sealed)] == [Ack.STATUS_STORED]
    confirmed = world.subject("a1940")
    assert confirmed.status == "confirmed" and confirmed.channel == "home_visit"
    assert confirmed.confirmed_device == world.device_id and confirmed.confirmed_by == "clerk1"
    assert confirmed.face_result == "match" and confirmed.confirmed_at == AT
    with world.sessions() as session:
        event = session.scalars(select(ConfirmationEvent)).one()
        assert event.face_score == pytest.approx(0.41)
        assert event.source_id == f"record:{sealed.record_id}"
        assert "与儿子同住" in event.note
    # A lost ack: the same bytes again, in a batch with itself; then sealed anew (a replay
    # after a restore from backup): a duplicate every time, one event.
    again = world.send(sealed, sealed)
    assert [a.status for a in again] == [Ack.STATUS_DUPLICATE] * 2
    resealed = world.seal(record_id=sealed.record_id)
    assert [a.status for a in world.send(resealed)] == [Ack.STATUS_DUPLICATE]
    assert world.events() == 1


def test_a_failed_face_resolved_by_a_manual_check_confirms_with_its_reason(
    world: World,
) -> None:
    manual = {
        "outcome": "manual",
        "score": 0.83,
        "threshold": 0.6,
        "liveness_passed": True,
        "reasons": ["different_person"],
        "manual_reason": "人脸比对未通过，已核对身份证原件与本人",
    }
    (ack,) = world.send(world.seal(channel="station", face=manual))
    assert ack.status == Ack.STATUS_STORED
    confirmed = world.subject("a1940")
    assert (confirmed.channel, confirmed.face_result) == ("station", "manual")
    with world.sessions() as session:
        assert "已核对身份证原件" in session.scalars(select(ConfirmationEvent)).one().note


def test_a_death_reported_at_a_visit_goes_to_the_deaths_path(world: World) -> None:
    sealed = world.seal(
        face=None, death={"death_date": "2026-08-14", "note": "家属告知，见死亡证明"}
    )
    assert [a.status for a in world.send(sealed)] == [Ack.STATUS_STORED]
    dead = world.subject("a1940")
    assert dead.status == "deceased" and dead.death_date == "2026-08-14"
    assert dead.death_source == "visit"
    assert dead.overpaid_months == 2 and dead.overpaid_fen == 2 * 228050  # Sep and Oct
    assert [a.status for a in world.send(sealed)] == [Ack.STATUS_DUPLICATE]
    assert world.events() == 1


def test_hostile_confirmations_are_refused_and_write_nothing(world: World) -> None:
    stranger = "110101199003070011"
    acks = world.send(
        world.seal(id_number=stranger, name="某某"),  # not on the roll
        world.seal(township_code="320723101000"),  # another township than the device's
        world.seal(campaign_id=world.campaign_id + 99),  # no such campaign
        world.seal(face={"outcome": "manual", "manual_reason": ""}),  # a manual check, no reason
        world.seal(),  # and one good one in the same batch, which stands
    )
    assert [(a.status, a.reason_code) for a in acks] == [
        (Ack.STATUS_REJECTED, "confirmation_refused"),
        (Ack.STATUS_REJECTED, "wrong_township"),
        (Ack.STATUS_REJECTED, "no_campaign"),
        (Ack.STATUS_REJECTED, "schema"),
        (Ack.STATUS_STORED, ""),
    ]
    assert "确认名册" in acks[0].reason and "理由" in acks[3].reason
    assert world.events() == 1
    # A confirmation of someone already dead is refused by the status table, nothing changes.
    world.send(
        world.seal(
            id_number=PEOPLE["a1950"].id_number, face=None, death={"death_date": "2026-09-30"}
        )
    )
    (ack,) = world.send(world.seal(id_number=PEOPLE["a1950"].id_number))
    assert ack.status == Ack.STATUS_REJECTED and "已去世" in ack.reason
    assert world.subject("a1950").status == "deceased" and world.events() == 2
