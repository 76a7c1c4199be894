"""年度认证 on the console, in-process over HTTP with the real slice store, card handoff and
face models: the visit list and its filters, the card read (the wrong person's card refused),
live frames compared offline with the centre's template and checked for liveness, a failed
check resolved by a manual check with its reason, a death reported at a visit, the sealed
``confirmation/1`` records; and the hostile inputs (CSRF, a wrong or malformed person id, an
oversize or broken photo, a missing reason), each refused with what to do, changing nothing."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from edge.card_reads import CardHandoff, IdentityRead
from edge.console.app import ConsoleServices, create_console_app
from edge.console.drafts import DraftStore
from edge.console.search import PeopleSearch
from edge.console.visits import VisitDesk
from edge.licence_guard import Verdict
from edge.slice_store import SliceStore
from muster.clock import VirtualClock
from muster.confirmation_record import parse_confirmation_record
from muster.face import Template, decode_image, face_template
from muster.idnumbers import CardType
from muster.v1 import data_pb2
from tests.fixtures.face_records import face_photo
from tests.unit.confirmation_world import PEOPLE, TOWNSHIP_A, Person
from tests.unit.test_console import accounts, hashed, login  # noqa: F401 (fixture)
from tests.unit.test_face import _nose_moved

NOW = dt.datetime(2026, 10, 20, 2, tzinfo=dt.UTC)
DEVICE = f"{TOWNSHIP_A}-CONSOLE"
OBAMA, BIDEN = PEOPLE["a1940"], PEOPLE["a1950"]  # both referenced by Obama's portrait
NO_PHOTO = PEOPLE["a1952"]
YOUNG = PEOPLE["a1965"]


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return bytes(data.tobytes())


@pytest.fixture(scope="module")
def frames() -> dict[str, list[bytes]]:
    """Live frames: the same man (another photo of him) turning his head; another man turning."""
    live = decode_image(face_photo("obama_2009_congress.jpg"), what="t")
    other = decode_image(face_photo("biden_2010_blue_room.jpg"), what="t")
    return {
        "obama": [_jpeg(live), _jpeg(_nose_moved(live, 0.6)), _jpeg(live)],
        "biden": [_jpeg(other), _jpeg(_nose_moved(other, 0.6))],
        "still": [_jpeg(live), _jpeg(live)],
    }


def _visit(person: Person, campaign: int, template: bytes, note: str, planned: bool) -> Any:
    return data_pb2.SlicePerson(
        id_number=person.id_number,
        details=b'{"name": "%s"}' % person.name.encode(),
        confirmation=data_pb2.ConfirmationVisit(
            campaign_id=campaign,
            year=2026,
            status="to_confirm",
            age_band="80+"
            if person.birth.year < 1947
            else "<70"
            if person.birth.year > 1956
            else "70-79",
            visit_planned=planned,
            name=person.name,
            category="disabled_soldier",
            birth_date=person.birth.isoformat(),
            face_template=template,
            face_note=note,
        ),
    )


class Desk:
    def __init__(self, tmp_path: Path) -> None:
        reference = face_template(decode_image(face_photo("obama_2012_portrait.jpg"), what="t"))
        assert isinstance(reference, Template)
        self.store = SliceStore(tmp_path / "slices.sqlite3", tmp_path / "slice.key")
        manifest = data_pb2.SliceManifest(township_code=TOWNSHIP_A, version=1, full=True)
        self.store.begin(manifest)
        self.store.apply(
            [
                _visit(OBAMA, 7, reference.to_bytes(), "", True),
                _visit(BIDEN, 7, reference.to_bytes(), "", True),
                _visit(NO_PHOTO, 7, b"", "no_photo", True),
                _visit(YOUNG, 7, b"", "not_prepared", False),
            ]
        )
        self.store.complete(1)
        self.sealed: list[tuple[str, str, bytes]] = []
        self.cards = CardHandoff(VirtualClock(NOW))

    def seal(self, record_id: str, schema: str, plaintext: bytes) -> None:
        self.sealed.append((record_id, schema, plaintext))

    def card(self, person: Person) -> None:
        self.cards.offer(
            IdentityRead(
                source="sam:test",
                document="id_card",
                card_type=CardType.RESIDENT,
                name=person.name,
                id_number=person.id_number,
                sex="1",
                birth_date=person.birth,
                address="江苏省灌云县伊山镇",
            )
        )

    def records(self) -> list[dict[str, Any]]:
        return [
            parse_confirmation_record(p, today=NOW.date()).model_dump(mode="json")
            for _i, _s, p in self.sealed
        ]


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


@pytest.fixture
async def client(tmp_path: Path, hashed: str, desk: Desk) -> Any:  # noqa: F811
    services = ConsoleServices(
        accounts=accounts(tmp_path / "console", hashed, VirtualClock(NOW)),
        drafts=DraftStore(tmp_path / "console" / "drafts.sqlite3", tmp_path / "drafts.key"),
        people=PeopleSearch(desk.store.people, lambda: 1),
        township_code=TOWNSHIP_A,
        township_name="灌云县 100 乡镇",
        verdict=lambda: Verdict(True, "", "授权有效", 300),
        seal=lambda record, attachments: None,
        already_sealed=lambda record_id: False,
        clock=VirtualClock(NOW),
        read_card=desk.cards.take,
        home_visit=True,
        visits=VisitDesk(
            visits=desk.store.visits,
            visit=desk.store.visit,
            mark_done=desk.store.mark_visit_done,
            seal_document=desk.seal,
            device_id=DEVICE,
        ),
    )
    transport = httpx.ASGITransport(app=create_console_app(services))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1", follow_redirects=True
    ) as c:
        yield c


def _upload(frames: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("frame", (f"f{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)]


async def test_the_list_and_its_filters(client: httpx.AsyncClient) -> None:
    await login(client, "li")
    page = await client.get("/confirmation")
    assert page.status_code == 200 and "本乡镇名单 4 人" in page.text
    assert all(p.name in page.text for p in (OBAMA, BIDEN, NO_PHOTO, YOUNG))
    station = await client.get("/confirmation", params={"channel": "station"})
    assert YOUNG.name in station.text and OBAMA.name not in station.text
    oldest = await client.get("/confirmation", params={"band": "80+"})
    assert OBAMA.name in oldest.text and YOUNG.name not in oldest.text
    for bad in ({"channel": "x"}, {"band": "90+"}, {"status": "'; drop"}):
        refused = await client.get("/confirmation", params=bad)
        assert refused.status_code == 400 and "筛选条件不对" in refused.text


async def test_a_home_visit_card_live_photos_match_and_seal(
    client: httpx.AsyncClient, desk: Desk, frames: dict[str, list[bytes]]
) -> None:
    csrf = await login(client, "li")
    base = f"/confirmation/{OBAMA.id_number}"
    desk.card(BIDEN)  # the wrong person's card is handed over first
    wrong = await client.post(f"{base}/card", data={"csrf": csrf})
    assert wrong.status_code == 409 and "拿错证件" in wrong.text
    desk.card(OBAMA)
    read = await client.post(f"{base}/card", data={"csrf": csrf})
    assert read.status_code == 200 and "已读取身份证，号码一致；姓名与名单一致" in read.text
    checked = await client.post(f"{base}/face", data={"csrf": csrf}, files=_upload(frames["obama"]))
    assert checked.status_code == 200
    assert re.search(
        r"人脸比对通过（相似距离 0\.\d\d，阈值 0\.6），活体检测通过（看到转头）", checked.text
    )
    sealed = await client.post(
        f"{base}/seal",
        data={
            "csrf": csrf,
            "checked_name": "on",
            "checked_phone": "on",
            "checked_address": "on",
            "phone": "13812345678",
            "address": "灌云县伊山镇某村 3 组",
            "living_situation": "与儿子同住，身体尚可",
        },
    )
    assert sealed.status_code == 200 and "认证记录已封存" in sealed.text
    assert "本机已确认（待上传）" in sealed.text
    (record,) = desk.records()
    assert desk.sealed[0][1] == "confirmation/1"
    assert record["channel"] == "home_visit" and record["id_number"] == OBAMA.id_number
    assert record["face"]["outcome"] == "match" and record["face"]["liveness_passed"]
    assert record["face"]["liveness_challenge"] == "turn" and record["face"]["frames"] == 3
    assert record["checked"] == {"name": True, "id_number": True, "phone": True, "address": True}
    assert record["device_id"] == DEVICE and record["clerk"] == "li"
    assert record["at"].startswith("2026-10-20T02:00")
    again = await client.post(f"{base}/seal", data={"csrf": csrf, "manual_reason": "再次确认本人"})
    assert again.status_code == 409 and len(desk.sealed) == 1


async def test_a_failed_face_needs_a_manual_check_with_its_reason(
    client: httpx.AsyncClient, desk: Desk, frames: dict[str, list[bytes]]
) -> None:
    csrf = await login(client, "li")
    base = f"/confirmation/{BIDEN.id_number}"
    desk.card(BIDEN)
    await client.post(f"{base}/card", data={"csrf": csrf})
    failed = await client.post(f"{base}/face", data={"csrf": csrf}, files=_upload(frames["biden"]))
    assert "人脸比对未通过：与档案照片不像同一人" in failed.text and "人工核验理由" in failed.text
    for reason in ("", "  ", "核对"):
        refused = await client.post(f"{base}/seal", data={"csrf": csrf, "manual_reason": reason})
        assert refused.status_code == 422 and "写明理由" in refused.text
    assert desk.sealed == []
    done = await client.post(
        f"{base}/seal",
        data={"csrf": csrf, "manual_reason": "人脸比对未通过，已核对身份证原件与本人"},
    )
    assert done.status_code == 200
    (record,) = desk.records()
    assert record["face"]["outcome"] == "manual" and "身份证原件" in record["face"]["manual_reason"]
    assert "different_person" in record["face"]["reasons"]


async def test_a_still_photo_does_not_pass_the_liveness_challenge(
    client: httpx.AsyncClient, desk: Desk, frames: dict[str, list[bytes]]
) -> None:
    csrf = await login(client, "li")
    page = await client.post(
        f"/confirmation/{OBAMA.id_number}/face", data={"csrf": csrf}, files=_upload(frames["still"])
    )
    assert "活体检测未通过：没有看到眨眼或转头" in page.text


async def test_no_template_says_why_and_a_death_goes_with_its_date(
    client: httpx.AsyncClient, desk: Desk, frames: dict[str, list[bytes]]
) -> None:
    csrf = await login(client, "li")
    page = await client.post(
        f"/confirmation/{NO_PHOTO.id_number}/face",
        data={"csrf": csrf},
        files=_upload(frames["obama"]),
    )
    assert "档案中没有本人照片，无法比对人脸，请人工核验" in page.text
    bad_date = await client.post(
        f"/confirmation/{YOUNG.id_number}/seal", data={"csrf": csrf, "death_date": "2026-13-01"}
    )
    assert bad_date.status_code == 422 and "不是日期" in bad_date.text
    died = await client.post(
        f"/confirmation/{YOUNG.id_number}/seal",
        data={"csrf": csrf, "death_date": "2026-08-14", "death_note": "家属告知，见死亡证明"},
    )
    assert died.status_code == 200
    (record,) = desk.records()
    assert record["death"] == {"death_date": "2026-08-14", "note": "家属告知，见死亡证明"}
    assert record["face"] is None and record["channel"] == "home_visit"


async def test_hostile_inputs_are_refused_and_change_nothing(
    client: httpx.AsyncClient, desk: Desk, frames: dict[str, list[bytes]]
) -> None:
    csrf = await login(client, "li")
    base = f"/confirmation/{OBAMA.id_number}"
    for path in ("card", "seal"):
        forged = await client.post(
            f"{base}/{path}", data={"csrf": "forged", "manual_reason": "x" * 9}
        )
        assert forged.status_code == 403 and "CSRF" in forged.text
    forged = await client.post(
        f"{base}/face", data={"csrf": "forged"}, files=_upload(frames["obama"])
    )
    assert forged.status_code == 403
    stranger = await client.get("/confirmation/110101199003070011")
    assert stranger.status_code == 404 and "不在本乡镇的年度认证名单中" in stranger.text
    for bad in ("../../etc", "%3Cscript%3E", "1" * 40):
        page = await client.get(f"/confirmation/{bad}")
        assert page.status_code == 404
    posted = await client.post(
        "/confirmation/110101199003070011/seal", data={"csrf": csrf, "manual_reason": "已核对原件"}
    )
    assert posted.status_code == 404
    huge = await client.post(
        f"{base}/face", data={"csrf": csrf}, files=_upload([b"\xff\xd8\xff" + b"0" * (5 << 20)] * 2)
    )
    assert huge.status_code == 413 and "照片太大" in huge.text
    broken = await client.post(
        f"{base}/face", data={"csrf": csrf}, files=_upload([b"not a picture", b"GIF89a"])
    )
    assert broken.status_code == 422 and "现场照片 1" in broken.text
    one = await client.post(f"{base}/face", data={"csrf": csrf}, files=_upload(frames["obama"][:1]))
    assert one.status_code == 422 and "至少需要两张" in one.text
    no_card = await client.post(f"{base}/seal", data={"csrf": csrf})
    assert no_card.status_code == 422 and "请先读取本人身份证" in no_card.text
    assert desk.sealed == [] and all(v["done"] is None for v in desk.store.visits())
