"""Review up the chain (S-09, S-11), end to end over the real import and ingest paths: the
centre imports a township's initial data, a device seals and uploads records, the township sees
who is missing and declares, the county checks each record field by field, sends one back with
a reason the device receives, approves the rest, the corrected record replaces the returned
one, the city takes the county's approved data in, and every step is in the audit. The
progress counts, the XLSX exports (opened with openpyxl) and the data set for the level above
follow the same records."""

from __future__ import annotations

import io
import json
import random
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import AdminIdentity, add_admin, hash_admin_password, issue_token
from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from controller.db.models import PersonRow, Record, ReviewEvent
from controller.devices.pki_store import ControllerPki
from controller.records.datasets import DatasetError, export_dataset, import_dataset, keys_document
from controller.records.ingest import Ingestor
from controller.records.initial_import import Importer
from controller.records.progress import progress, set_deadline, weekly_report
from controller.records.review import (
    APPROVED,
    RETURNED,
    SUPERSEDED,
    approve,
    compare_fields,
    declare_complete,
    forward,
    missing_people,
    return_record,
    returned_for_device,
)
from edge.simulators.collector import simulated_record
from muster.clock import VirtualClock
from muster.crypto import (
    generate_licence_authority_key,
    generate_upload_key,
    seal_record,
    upload_public_from_bytes,
)
from muster.errors import ConfigError
from muster.forms import current_form
from muster.forms.samples import sample_fields
from muster.records import Person
from muster.synthetic import dataset_row
from muster.v1 import data_pb2
from tests.unit import test_ingest
from tests.unit.conftest import NOW
from tests.unit.test_ingest import Dev

# The enrolled device and the ingestor of the ingest tests, as fixtures here too.
device = test_ingest.device
ingestor = test_ingest.ingestor

TOWNSHIP = "370902001000"
TOWNSHIP_ADMIN = AdminIdentity("li.township", "township", "370902001")
COUNTY_ADMIN = AdminIdentity("wang.county", "county", "370902")
CITY_ADMIN = AdminIdentity("zhao.city", "city", "3709")


def _import_people(sessions: sessionmaker[Session], count: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    rows = [dataset_row(rng, TOWNSHIP, NOW.date()) for _ in range(count)]
    report = Importer(sessions, clock=VirtualClock(NOW)).import_rows(enumerate(rows, start=2))
    assert report.added == count, report.rejected
    return rows


def _seal(
    dev: Dev, row: dict[str, str], seed: int, *, name: str | None = None
) -> data_pb2.SealedRecord:
    rng = random.Random(seed)
    base = simulated_record(rng, TOWNSHIP, NOW)
    birth = base.person.birth_date.fromisoformat(row["birth_date"])
    payload = base.model_copy(
        update={
            "person": Person(
                name=name or row["name"],
                id_number=row["id_number"],
                sex="1" if row["sex"] == "男" else "2",
                birth_date=birth,
            ),
            "fields": sample_fields(current_form(base.category.value), rng, birth, NOW.date()),
        }
    )
    return seal_record(
        payload.to_bytes(),
        record_id=payload.record_id,
        device_id=dev.device_id,
        schema_version=f"{payload.category.value}/{payload.form_version}",
        upload_key=upload_public_from_bytes(dev.upload_public),
        key_version=1,
        signing_key=dev.key,
        now=NOW,
    )


def _upload(ingestor: Ingestor, dev: Dev, sealed: list[data_pb2.SealedRecord]) -> None:
    acks = ingestor.ingest_batch(dev.device_id, sealed)
    assert [a.status for a in acks] == [data_pb2.RecordAck.STATUS_STORED] * len(sealed), acks


@pytest.fixture
def chain(
    sessions: sessionmaker[Session], ingestor: Ingestor, device: Dev
) -> tuple[list[dict[str, str]], list[str]]:
    """Six people in the slice; four records uploaded, the first with a mistyped name."""
    rows = _import_people(sessions, 6)
    sealed = [_seal(device, rows[0], 100, name=rows[0]["name"] + "某")] + [
        _seal(device, row, 100 + i) for i, row in enumerate(rows[1:4], start=1)
    ]
    _upload(ingestor, device, sealed)
    return rows, [s.record_id for s in sealed]


def test_the_chain_from_township_to_city(
    sessions: sessionmaker[Session],
    ingestor: Ingestor,
    device: Dev,
    chain: tuple[list[dict[str, str]], list[str]],
) -> None:
    """Declare with the missing named, return with a reason the device receives, approve,
    replace the returned record, forward to the city; the counts and the audit follow."""
    rows, ids = chain
    with sessions.begin() as s:
        missing = {p.id_number for p in missing_people(s, TOWNSHIP)}
        assert missing == {rows[4]["id_number"], rows[5]["id_number"]}
        with pytest.raises(ConfigError, match="还有 2 人"):
            declare_complete(s, TOWNSHIP, TOWNSHIP_ADMIN, NOW)
    with sessions.begin() as s:
        declared = declare_complete(s, TOWNSHIP, TOWNSHIP_ADMIN, NOW, note="两人已迁往外省")
        assert declared.missing == 2

    with sessions.begin() as s:
        record = s.get(Record, ids[0])
        assert record is not None
        person = s.get(PersonRow, (TOWNSHIP, record.id_number))
        checks = {f.key: f for f in compare_fields(record, person)}
        assert checks["name"].differs
        assert checks["name"].collected == rows[0]["name"] + "某"
        assert checks["name"].initial == rows[0]["name"]
        assert not any(checks[k].differs for k in ("id_number", "sex", "birth_date"))
        with pytest.raises(ConfigError, match="原因"):
            return_record(s, ids[0], COUNTY_ADMIN, "  ", NOW)
    with sessions.begin() as s:
        return_record(s, ids[0], COUNTY_ADMIN, "姓名与户籍不符，请核对身份证后重录", NOW)
        for record_id in ids[1:]:
            approve(s, record_id, COUNTY_ADMIN, NOW)
    with sessions() as s:
        (back,) = returned_for_device(s, device.device_id)
        assert back.record_id == ids[0] and "姓名" in back.reason

    # The clerks correct the record; the new one supersedes the one sent back.
    corrected = _seal(device, rows[0], 200)
    _upload(ingestor, device, [corrected])
    with sessions.begin() as s:
        assert s.get(Record, ids[0]).review_status == SUPERSEDED  # type: ignore[union-attr]
        assert returned_for_device(s, device.device_id) == []
        approve(s, corrected.record_id, COUNTY_ADMIN, NOW)

    with sessions() as s:
        report = progress(s, "370902", NOW)
    (row,) = report.regions
    assert (row.code, row.totals.slice, row.totals.collected) == ("370902001", 6, 4)
    assert (row.totals.reviewed, row.totals.approved, row.totals.missing) == (4, 4, 2)
    assert (row.totals.townships, row.totals.declared) == (1, 1)

    with sessions.begin() as s:
        assert forward(s, CITY_ADMIN, "370902", NOW) == 4
    with sessions.begin() as s, pytest.raises(ConfigError, match="市级接收"):
        return_record(s, corrected.record_id, COUNTY_ADMIN, "再看一次", NOW)
    with sessions() as s:
        levels = set(
            s.scalars(select(Record.approved_level).where(Record.review_status == APPROVED))
        )
        actions = [e.action for e in s.scalars(select(ReviewEvent).order_by(ReviewEvent.id))]
    assert levels == {"city"}
    # The corrected record's arrival is in the returned record's history, naming the new one.
    assert actions == [
        "declare",
        "return",
        "approve",
        "approve",
        "approve",
        "supersede",
        "approve",
        "forward",
    ]


def test_overdue_regions_and_the_weekly_report(
    sessions: sessionmaker[Session], chain: tuple[list[dict[str, str]], list[str]]
) -> None:
    """Past the collection deadline a township with people missing is overdue; the weekly
    report counts the week's new records beside the cumulative progress."""
    with sessions.begin() as s:
        set_deadline(s, "collection", "3709", (NOW - timedelta(days=2)).date(), "zhao.city", NOW)
        set_deadline(s, "review", "370902", (NOW + timedelta(days=20)).date(), "wang.county", NOW)
    with sessions() as s:
        report = progress(s, "370902", NOW)
        week = weekly_report(s, "370902", NOW.date(), NOW)
    assert report.regions[0].overdue == ["collection"]
    assert set(report.deadlines) == {"collection", "review"}
    assert (week.total.new_records, week.total.cumulative.missing) == (4, 2)


def test_the_progress_sheet_and_approved_records_open_in_openpyxl(
    sessions: sessionmaker[Session], chain: tuple[list[dict[str, str]], list[str]]
) -> None:
    """The county admin downloads the progress sheet and the approved records of their county
    over the API; both open with openpyxl and hold what the progress page shows."""
    _rows, ids = chain
    with sessions.begin() as s:
        for record_id in ids[1:]:
            approve(s, record_id, COUNTY_ADMIN, NOW)
        add_admin(
            s,
            username="wang.county",
            role="county",
            region="370902",
            password="unused-1",
            now=NOW,
            password_hash=hash_admin_password("unused-1", salt=b"\1" * 16),
        )
        token = issue_token(s, "wang.county", NOW)
    app = create_admin_app(sessions, clock=VirtualClock(NOW))

    async def fetch(path: str) -> bytes:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
            return response.content

    import asyncio

    sheet = load_workbook(io.BytesIO(asyncio.run(fetch("/progress.xlsx"))))["进度"]
    values = [[c.value for c in r] for r in sheet.iter_rows()]
    header = values[2]
    assert header[:8] == [
        "地区代码",
        "地区",
        "名单人数",
        "已采集",
        "已审核",
        "已通过",
        "未采集",
        "完成率%",
    ]
    township = values[3]
    assert township[0] == "370902001" and township[2:7] == [6, 4, 3, 3, 2]
    assert values[-1][1] == "合计"

    approved = load_workbook(io.BytesIO(asyncio.run(fetch("/approved.xlsx"))))["已通过记录"]
    lines = [[c.value for c in r] for r in approved.iter_rows(min_row=2)]
    assert sorted(line[0] for line in lines) == sorted(ids[1:])
    assert {line[1] for line in lines} == {TOWNSHIP}


def test_a_data_set_goes_up_signed_encrypted_and_once(
    sessions: sessionmaker[Session],
    chain: tuple[list[dict[str, str]], list[str]],
    pki: ControllerPki,
    tmp_path: Path,
) -> None:
    """The county exports its approved records for the city; the city imports them once (a
    second import changes nothing), refuses a tampered file and an untrusted signer, and
    counts the records as approved in its own progress."""
    _rows, ids = chain
    with sessions.begin() as s:
        for record_id in ids:
            approve(s, record_id, COUNTY_ADMIN, NOW)
    city_url = f"sqlite:///{tmp_path / 'city.db'}"
    migrate(city_url)
    city_engine = make_engine(city_url)
    city = session_factory(city_engine)
    city_upload, city_signer = generate_upload_key(), generate_licence_authority_key()
    city_keys = keys_document("泰安市", city_signer, city_upload)
    county_keys = keys_document("泰山区", pki.licence_key, pki.upload_keys[1])
    with sessions() as s:
        blob, count = export_dataset(
            s,
            area="370902",
            level="county",
            source="泰山区",
            signer=pki.licence_key,
            recipient_keys=city_keys,
            now=NOW,
        )
    assert count == 4
    assert b"370902001000" not in blob  # encrypted: not even the township codes show

    def run(data: bytes, signers: list[str]) -> object:
        with city.begin() as s:
            return import_dataset(
                s, data, trusted_signers=signers, own_keys={1: city_upload}, now=NOW
            )

    with pytest.raises(DatasetError, match="未受信任"):
        run(blob, [])
    doc = json.loads(blob)
    doc["header"]["area"] = "3709"
    with pytest.raises(DatasetError, match="签名无效"):
        run(json.dumps(doc).encode(), [county_keys["signing_public"]])
    first = run(blob, [county_keys["signing_public"]])
    again = run(blob, [county_keys["signing_public"]])
    assert (first.added, first.already_imported) == (4, False)  # type: ignore[attr-defined]
    assert (again.added, again.already_imported) == (0, True)  # type: ignore[attr-defined]
    with city() as s:
        report = progress(s, "3709", NOW)
    assert (report.totals.collected, report.totals.approved) == (4, 4)
    city_engine.dispose()


def test_roles_outside_review_cannot_review(
    sessions: sessionmaker[Session], chain: tuple[list[dict[str, str]], list[str]]
) -> None:
    """Only the county reviews: a township or city admin approving is refused, and the neighbour
    county cannot touch the record."""
    from controller.accounts.admins import AccessDenied

    _rows, ids = chain
    for who in (TOWNSHIP_ADMIN, CITY_ADMIN, AdminIdentity("x", "county", "370911")):
        with sessions.begin() as s, pytest.raises(AccessDenied):
            approve(s, ids[1], who, NOW)
    with sessions() as s:
        assert s.get(Record, ids[1]).review_status != APPROVED  # type: ignore[union-attr]
        assert RETURNED not in set(s.scalars(select(Record.review_status)))


def test_the_device_keeps_the_returned_list_from_health(
    sessions: sessionmaker[Session],
    device: Dev,
    chain: tuple[list[dict[str, str]], list[str]],
    tmp_path: Path,
) -> None:
    """What the Health answer carries for a device is what the daemon keeps in returned.json
    for the console; the same list again rewrites nothing, an empty one clears it."""
    from controller.records.review import returned_messages
    from edge.returned_records import read_returned, write_returned

    _rows, ids = chain
    with sessions.begin() as s:
        return_record(s, ids[2], COUNTY_ADMIN, "缺少本人签名", NOW)
    with sessions() as s:
        response = data_pb2.HealthResponse(returned_records=returned_messages(s, device.device_id))
    wire = data_pb2.HealthResponse.FromString(response.SerializeToString())
    assert write_returned(tmp_path, wire.returned_records)
    assert not write_returned(tmp_path, wire.returned_records)
    (kept,) = read_returned(tmp_path)
    assert (kept["record_id"], kept["reason"]) == (ids[2], "缺少本人签名")
    assert write_returned(tmp_path, []) and read_returned(tmp_path) == []
