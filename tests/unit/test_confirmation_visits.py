"""The confirmation visit list in the township's slice (S-21): the open campaign's people with
status, age band, planned home visit and a face template made at the centre from the photo of
the records campaign (never the picture); a person without a photo and one whose photo shows
no face arrive with the reason instead; the device keeps exactly the centre's newest list."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from controller.confirmation.campaigns import create_campaign, plan_visits
from controller.confirmation.roll import import_roll
from controller.confirmation.steps import ConfirmationReport, apply_confirmation, record_death
from controller.confirmation.templates import compute_templates
from controller.db.models import ConfirmationCampaign
from controller.devices.pki_store import ControllerPki
from controller.records.slices import plan_slice, slice_chunks
from edge.slice_store import SliceStore
from muster.clock import VirtualClock
from muster.confirmation import Channel, FaceResult
from muster.crypto import DeviceKey, generate_device_key, generate_upload_key
from muster.face import Template, compare, decode_image, face_template
from muster.slices import ChunkReceived, ManifestAccepted, SliceComplete, SliceReader
from tests.fixtures.face_records import face_photo, store_photo_records
from tests.unit.confirmation_world import PEOPLE, TOWNSHIP_A, at_cst, load_people, write_roll

DEVICE = f"{TOWNSHIP_A}-VISITS"
NOW = at_cst(2026, 10, 20)


def _sync(
    sessions: sessionmaker[Session], pki: ControllerPki, key: DeviceKey, store: SliceStore
) -> list[ChunkReceived]:
    with sessions() as session:
        plan = plan_slice(session, TOWNSHIP_A, have_version=store.version, now=NOW)
    reader = SliceReader(
        device_id=DEVICE,
        township_code=TOWNSHIP_A,
        device_key=key,
        authority_key=pki.licence_key.public_key(),
    )
    received = []
    for chunk in slice_chunks(
        sessions,
        plan,
        device_id=DEVICE,
        device_key=key.public_key(),
        signing_key=pki.licence_key,
        now=NOW,
        chunk_people=3,
    ):
        for event in reader.feed(chunk):
            if isinstance(event, ManifestAccepted):
                store.begin(event.manifest)
            elif isinstance(event, ChunkReceived):
                store.apply(event.people)
                received.append(event)
            elif isinstance(event, SliceComplete):
                store.complete(event.version)
    return received


def test_the_slice_carries_the_visit_list_with_face_templates(
    sessions: sessionmaker[Session], pki: ControllerPki, tmp_path: Path
) -> None:
    clock = VirtualClock(NOW)
    upload = generate_upload_key()
    load_people(sessions, tmp_path, clock)
    with sessions.begin() as session:
        campaign_id = create_campaign(session, year=2026, county="320723", clock=clock, by="ops").id
    import_roll(sessions, campaign_id, write_roll(tmp_path / "roll.csv"), clock=clock)
    photos = {"a1940": "obama_2012_portrait.jpg", "a1950": "no_face_coffee.jpg"}
    with sessions.begin() as session:
        store_photo_records(
            session,
            upload,
            {PEOPLE[k].id_number: (TOWNSHIP_A, face_photo(f)) for k, f in photos.items()},
            at_cst(2026, 5, 1),
        )
        campaign = session.get(ConfirmationCampaign, campaign_id)
        assert campaign is not None
        plan_visits(session, campaign)
        report = compute_templates(session, campaign, {1: upload}, now=NOW)
    assert report.described == 1
    assert report.without == {"no_face": 1, "no_photo": len(PEOPLE) - 2}
    with sessions.begin() as session:  # a second run describes nobody again
        campaign = session.get(ConfirmationCampaign, campaign_id)
        assert campaign is not None
        assert compute_templates(session, campaign, {1: upload}, now=NOW).skipped == len(PEOPLE)

    key = generate_device_key()
    store = SliceStore(tmp_path / "dev" / "slices.sqlite3", tmp_path / "dev" / "slice.key")
    received = _sync(sessions, pki, key, store)
    township_a = [p for p in PEOPLE.values() if p.township == TOWNSHIP_A]
    assert store.count() == len(township_a)
    # Only the last chunk carries the visit list, and with each visit the person's row.
    assert all(not p.HasField("confirmation") for r in received[:-1] for p in r.people)
    visits = {v["id_number"]: v for v in store.visits()}
    assert set(visits) == {p.id_number for p in township_a}
    oldest = visits[PEOPLE["a1940"].id_number]
    assert oldest["name"] == "张德三" and oldest["age_band"] == "80+" and oldest["visit_planned"]
    assert oldest["status"] == "to_confirm" and oldest["year"] == 2026 and oldest["done"] is None
    # The template is the centre's description of the reference photo: the same man's other
    # photo matches it on the device, and no picture bytes ever reached the device.
    template = Template.from_bytes(oldest["face_template"])
    live = face_template(decode_image(face_photo("obama_2009_congress.jpg"), what="test"))
    assert isinstance(live, Template) and compare(template, live).match
    assert visits[PEOPLE["a1950"].id_number]["face_note"] == "no_face"
    assert visits[PEOPLE["a1950"].id_number]["face_template"] == b""
    assert visits[PEOPLE["a1952"].id_number]["face_note"] == "no_photo"
    assert store.find(PEOPLE["a1952"].id_number)["name"] == "王建国"  # type: ignore[index]
    raw = b"".join(
        bytes(v) if isinstance(v, bytes) else str(v).encode()
        for table in ("visits", "people")
        for row in sqlite3.connect(store.path).execute(f"SELECT * FROM {table}")
        for v in row
    )
    assert "张德三".encode() not in raw and PEOPLE["a1940"].id_number.encode() not in raw
    assert face_photo("obama_2012_portrait.jpg")[:64] not in raw

    # The centre moves on: one confirmed at the station, one died. The next (empty) delta
    # brings the new list whole; the dead man's visit is gone, his row stays.
    with sessions.begin() as session:
        campaign = session.get(ConfirmationCampaign, campaign_id)
        assert campaign is not None
        apply_confirmation(
            session,
            campaign,
            ConfirmationReport(
                id_number=PEOPLE["a1958"].id_number,
                channel=Channel.STATION,
                at=NOW,
                by="clerk1",
                face_result=FaceResult.MATCH,
                device_id="other-device",
            ),
        )
        record_death(
            session,
            campaign,
            PEOPLE["a1960"].id_number,
            death_date=at_cst(2026, 9, 1).date(),
            day=NOW.date(),
            at=NOW,
            by="ops",
            source="visit",
        )
    store.mark_visit_done(PEOPLE["a1963"].id_number, {"campaign_id": campaign_id, "at": "x"})
    _sync(sessions, pki, key, store)
    visits = {v["id_number"]: v for v in store.visits()}
    assert visits[PEOPLE["a1958"].id_number]["status"] == "confirmed"
    assert PEOPLE["a1960"].id_number not in visits
    assert store.find(PEOPLE["a1960"].id_number) is not None
    assert visits[PEOPLE["a1963"].id_number]["done"] == {"campaign_id": campaign_id, "at": "x"}
    assert store.count() == len(township_a)

    store.wipe("revoked")
    assert store.visits() == [] and store.visit(PEOPLE["a1940"].id_number) is None
    store.close()


def test_the_operator_makes_the_templates_from_the_command_line(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """``confirmation face-templates`` says how many were described and why the others were
    not; an unknown campaign is refused with what to do."""
    from click.testing import CliRunner

    from muster.cli import cli

    url = f"sqlite:///{tmp_path / 'controller.db'}"
    clock = VirtualClock(NOW)
    load_people(sessions, tmp_path, clock)
    with sessions.begin() as session:
        campaign_id = create_campaign(session, year=2026, county="320723", clock=clock, by="ops").id
    import_roll(sessions, campaign_id, write_roll(tmp_path / "roll.csv"), clock=clock)
    args = ["controller", "confirmation", "face-templates", "--county", "320723"]
    common = ["--database-url", url, "--data-dir", str(tmp_path / "ctl")]
    result = CliRunner().invoke(cli, [*args, "--year", "2026", *common])
    assert result.exit_code == 0, result.output
    assert '"without": {"no_photo": 14}' in result.stdout.splitlines()[-1]
    result = CliRunner().invoke(cli, [*args, "--year", "2025", *common])
    assert result.exit_code == 2 and "2025" in result.stderr
