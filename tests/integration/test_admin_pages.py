"""What a reviewer at the centre reads on the admin pages, rendered by the app over a real
PostgreSQL database: a record with its photo, signature and scan inline, who made it at the
township and on which device, code lists as names; approving and returning ask first and say
what was done; English pages carry no Chinese label; times are Beijing time, labelled."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Record
from muster.clock import VirtualClock
from tests.unit.admin_world import (
    HOME,
    NEIGHBOUR,
    NOW,
    World,
    attach_files,
    bearer,
    build_world,
    sample_image,
)

CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]+")
PHOTO, SIGNATURE = sample_image("jpeg", 1), sample_image("png", 2)


@pytest.fixture
def sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return build_world(sessions, people=5, collected=3)


@pytest.fixture
async def client(sessions: sessionmaker[Session], world: World) -> AsyncIterator[httpx.AsyncClient]:
    record_id = world.counties[HOME].record_ids[0]
    key = attach_files(sessions, record_id, {"photo.jpg": PHOTO, "signature.png": SIGNATURE})
    app = create_admin_app(sessions, clock=VirtualClock(NOW), upload_keys=lambda: {1: key})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://admin.test", headers=bearer(world.tokens["county"])
    ) as c:
        yield c


def _text(html: str) -> str:
    """What a person reads: the page without tags, scripts, styles and attribute values."""
    html = re.sub(r"<(style|script)\b.*?</\1>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


async def _post(client: httpx.AsyncClient, path: str, form: dict[str, str]) -> httpx.Response:
    return await client.post(path, data=form)


async def test_a_record_shows_its_photo_signature_origin_and_names(
    client: httpx.AsyncClient, world: World
) -> None:
    """The photo and signature are inline images the same app serves byte for byte; the scan
    that was not uploaded says so; who entered and who checked it and the device are named;
    ethnicity 01 reads 汉族; the received time is Beijing time, labelled."""
    record_id = world.counties[HOME].record_ids[0]
    page = await client.get(f"/review/{record_id}")
    assert page.status_code == 200
    html = page.text
    for name, data in (("photo.jpg", PHOTO), ("signature.png", SIGNATURE)):
        src = f"/api/v1/records/{record_id}/attachments/{name}"
        assert f'<img src="{src}"' in html
        served = await client.get(src)
        assert served.status_code == 200 and served.content == data
    sheet = re.search(r'data-attachment="signed_sheet.jpg">(.*?)</figure>', html, re.S)
    assert sheet and "未随记录上传" in sheet.group(1) and "<img" not in sheet.group(1)
    detail = (await client.get(f"/api/v1/records/{record_id}")).json()
    origin = detail["origin"]
    assert origin["device_id"] == world.counties[HOME].device_id
    assert origin["entered_by"] and origin["reviewed_by"]
    assert re.search(rf'data-testid="entered-by">{re.escape(origin["entered_by"])}<', html)
    assert re.search(rf'data-testid="reviewed-by">{re.escape(origin["reviewed_by"])}<', html)
    assert f">{origin['device_id']}</a>" in html
    ethnicity = re.search(r'<tr data-field="ethnicity"><td>(.*?)</td><td[^>]*>(.*?)</td>', html)
    assert ethnicity and ethnicity.group(1) == "民族" and ethnicity.group(2).startswith("汉族")
    assert "(北京时间)" in html
    # The API keeps ISO 8601 with the offset.
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", detail["received_at"]
    )


async def test_approving_asks_first_and_then_says_who_was_approved(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    record_id = world.counties[HOME].record_ids[1]
    asked = await _post(client, f"/review/{record_id}", {"action": "approve"})
    assert asked.status_code == 200 and 'data-testid="confirm"' in asked.text
    assert "确认通过" in asked.text
    with sessions() as s:
        assert s.get(Record, record_id).review_status == "collected"  # type: ignore[union-attr]
        name = s.get(Record, record_id).payload["person"]["name"]  # type: ignore[union-attr]
    done = await _post(client, f"/review/{record_id}", {"action": "approve", "confirm": "yes"})
    assert done.status_code == 303
    assert f"done=approve&prev={record_id}" in done.headers["location"]
    after = await client.get(done.headers["location"])
    assert f"已通过：{name}" in after.text
    with sessions() as s:
        assert s.get(Record, record_id).review_status == "approved"  # type: ignore[union-attr]


async def test_returning_needs_a_reason_asks_first_and_says_why(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    record_id = world.counties[HOME].record_ids[2]
    bare = await _post(client, f"/review/{record_id}", {"action": "return", "reason": "  "})
    assert bare.status_code == 400 and "请填写原因" in bare.text
    reason = "照片模糊<script>，请重拍"
    asked = await _post(client, f"/review/{record_id}", {"action": "return", "reason": reason})
    assert asked.status_code == 200 and "确认退回" in asked.text
    assert "照片模糊&lt;script&gt;" in asked.text and "<script>" not in asked.text
    done = await _post(
        client, f"/review/{record_id}", {"action": "return", "reason": reason, "confirm": "yes"}
    )
    assert done.status_code == 303
    with sessions() as s:
        record = s.get(Record, record_id)
        assert record is not None and record.review_status == "returned"
        name = record.payload["person"]["name"]
    after = await client.get(done.headers["location"])
    assert f"已退回：{name}，原因：照片模糊&lt;script&gt;，请重拍" in after.text


@pytest.mark.parametrize(
    "query",
    [
        "done=delete&prev={own}",
        "done=approve&prev=../../etc",
        "done=approve&prev={own}%00",
        "done=approve&prev=" + "a" * 500,
        "lang=fr",
        "lang=en%0d%0aSet-Cookie:x=1",
    ],
)
async def test_hostile_review_page_parameters_are_refused(
    client: httpx.AsyncClient, world: World, query: str
) -> None:
    own = world.counties[HOME].record_ids[0]
    answer = await client.get(f"/review/{own}?" + query.format(own=own))
    assert answer.status_code == 422
    assert "set-cookie" not in {k.lower() for k in answer.headers}


async def test_a_forged_done_link_says_nothing(
    client: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    """A link claiming a decision that was not made, or about the neighbour's record, shows
    no message and no name from outside the admin's area."""
    own, other = world.counties[HOME].record_ids, world.counties[NEIGHBOUR].record_ids
    with sessions() as s:
        their_name = s.get(Record, other[0]).payload["person"]["name"]  # type: ignore[union-attr]
    for query in (f"done=approve&prev={own[1]}", f"done=return&prev={other[0]}"):
        page = await client.get(f"/review/{own[0]}?{query}")
        assert page.status_code == 200
        assert 'data-testid="review-done"' not in page.text
        assert their_name not in page.text


async def test_english_review_pages_carry_no_chinese_label(
    client: httpx.AsyncClient, world: World
) -> None:
    """Every Chinese run on the English record and list pages is data (a name, a value the
    clerk entered, a code list's name), never a label."""
    record_id = world.counties[HOME].record_ids[0]
    detail: dict[str, Any] = (await client.get(f"/api/v1/records/{record_id}")).json()
    data = " ".join(
        [detail["name"], *(f["collected"] + " " + f["initial"] for f in detail["fields"])]
        + [detail["origin"]["entered_by"], detail["origin"]["reviewed_by"]]
        + [s["clerk"] + " " + s["note"] for s in detail["origin"]["steps"]]
    )
    page = await client.get(f"/review/{record_id}?lang=en")
    shown = set(CJK.findall(_text(page.text)))
    assert shown - set(CJK.findall(data)) - {"中文"} == set()
    for label in ("Entered by", "Photo", "Signature", "Ethnicity", "retired soldier"):
        assert label in page.text
    assert "(Beijing time)" in page.text
    listing = await client.get(f"/review?region={HOME}&lang=en")
    assert "3 records" in listing.text and "devices" not in _text(listing.text)
    names = {
        n
        for r in (await client.get(f"/api/v1/review?region={HOME}")).json()
        for n in CJK.findall(r["name"])
    }
    assert set(CJK.findall(_text(listing.text))) - names - {"中文"} == set()


@pytest.fixture
async def national(
    sessions: sessionmaker[Session], world: World
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_admin_app(sessions, clock=VirtualClock(NOW))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://admin.test",
        headers=bearer(world.tokens["ministry"]),
    ) as c:
        yield c


@pytest.mark.parametrize("hours", [6, 24, 72, 168])
async def test_the_flow_charts_span_the_chosen_range(
    national: httpx.AsyncClient, hours: int
) -> None:
    """Records per hour has one labelled bar per hour of the range, the titles name it, the
    chosen range is marked and the others are links; the page refreshes itself."""
    page = await national.get(f"/flow?hours={hours}")
    assert page.status_code == 200
    chart = re.search(r'<svg[^>]*data-testid="records-per-hour".*?</svg>', page.text, re.S)
    assert chart is not None
    assert chart.group(0).count("<rect") == hours
    assert f"<h2>每小时接收记录（最近{hours}小时）</h2>" in page.text
    assert f"<b>最近{hours}小时</b>" in page.text
    others = {6, 24, 72, 168} - {hours}
    assert all(f'href="/flow?hours={h}&' in page.text for h in others)
    assert '<meta http-equiv="refresh" content="60">' in page.text
    # Bars are labelled by the Beijing hour: NOW is 09:00 UTC, so the last bar is 17:00.
    labels = re.findall(r'data-label="([^"]+)"', chart.group(0))
    assert labels[-1] == "11-23 17:00"


@pytest.mark.parametrize("hours", ["0", "-24", "5", "25", "99999999999999999999", "24.5", "x"])
async def test_a_range_we_do_not_offer_is_refused(national: httpx.AsyncClient, hours: str) -> None:
    answer = await national.get(f"/flow?hours={hours}")
    assert answer.status_code == 422


async def test_completion_chart_is_on_a_fixed_scale_with_every_bar_labelled(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get(f"/progress?region={HOME}")
    chart = re.search(r'<svg[^>]*data-testid="completion-chart".*?</svg>', page.text, re.S)
    assert chart is not None
    svg = chart.group(0)
    assert 'data-scale-max="100"' in svg and ">100%</text>" in svg
    values = re.findall(r'data-value="([^"]+)"', svg)
    assert values == ["60"]  # 3 of the township's 5 collected
    assert svg.count('class="value">60%</text>') == 1


async def test_zeros_are_plain_and_counts_that_matter_link(national: httpx.AsyncClient) -> None:
    page = await national.get(f"/?region={HOME}")
    row = re.search(r'<tr data-region="370902001">(.*?)</tr>', page.text, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num ?([^"]*)">(.*?)</td>', row.group(1), re.S)
    for css, content in cells[1:]:
        if content.strip() == "0":
            assert css == "zero" and "<a" not in content
    assert '<b class="zero">0</b>' in page.text  # no alert: a grey 0, not a red link
    assert "心跳超时" in page.text and "无心跳" not in page.text


async def test_times_people_read_are_beijing_time_labelled(
    national: httpx.AsyncClient, world: World
) -> None:
    device = world.counties[HOME].device_id
    zh = (await national.get(f"/devices/{device}")).text
    en = (await national.get(f"/devices/{device}?lang=en")).text
    # NOW, 09:00 UTC, is 17:00 in Beijing.
    assert "2026-11-23 17:00 (北京时间)" in zh and "UTC" not in _text(zh)
    assert "2026-11-23 17:00 (Beijing time)" in en
    codes = (await national.get("/codes")).text
    assert "(北京时间)" in codes and " UTC" not in _text(codes)


async def test_docs_load_only_from_this_app(client: httpx.AsyncClient) -> None:
    """``/docs`` and ``/redoc`` name no address outside the app; their scripts, stylesheet
    and icon come from the app itself."""
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", docs.text, re.I)
    for src in re.findall(r'(?:src|href)="([^"]+)"', docs.text):
        assert src.startswith("/docs/assets/")
        asset = await client.get(src)
        assert asset.status_code == 200 and len(asset.content) > 100
    assert "'/openapi.json'" in docs.text or '"/openapi.json"' in docs.text
    redoc = await client.get("/redoc")
    assert redoc.status_code == 200
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", redoc.text, re.I)
    assert '<script src="/docs/assets/redoc.standalone.js">' in redoc.text


@pytest.mark.parametrize(
    "name",
    [
        "..%2f..%2fetc%2fpasswd",
        "index.html",
        "swagger-ui.css.map",
        "%00",
        "SWAGGER-UI.CSS",
        "x" * 300,
    ],
)
async def test_only_the_named_docs_assets_are_served(client: httpx.AsyncClient, name: str) -> None:
    answer = await client.get(f"/docs/assets/{name}")
    assert answer.status_code == 404
    assert "root:" not in answer.text


async def test_a_sign_in_asked_for_in_english_stays_in_english(
    sessions: sessionmaker[Session], world: World
) -> None:
    """An English page without a session leads to the English sign-in page, and signing in
    comes back to that English page."""
    from tests.unit.admin_world import PASSWORD

    app = create_admin_app(sessions, clock=VirtualClock(NOW))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as c:
        first = await c.get(f"/progress?region={HOME}&lang=en")
        assert first.status_code == 303
        login_url = first.headers["location"]
        assert login_url.startswith("/login?") and "lang=en" in login_url
        form = await c.get(login_url)
        assert 'lang="en"' in form.text and "Sign in" in form.text
        target = re.search(r'name="next" value="([^"]+)"', form.text)
        assert target is not None
        signed_in = await c.post(
            "/login",
            data={
                "username": "county",
                "password": PASSWORD,
                "lang": "en",
                "next": target.group(1).replace("&amp;", "&"),
            },
        )
        assert signed_in.status_code == 303
        back = await c.get(signed_in.headers["location"])
        assert back.status_code == 200 and "Collection progress" in back.text
        # A Chinese page (or a language we lack) leads to the Chinese sign-in page.
    async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as c:
        for lang in ("zh", "fr", "en%0d%0aX:1"):
            answer = await c.get(f"/progress?lang={lang}")
            assert answer.status_code == 303 and "lang=en" not in answer.headers["location"]


async def test_english_fleet_pages_name_townships_and_event_kinds(
    national: httpx.AsyncClient, world: World, sessions: sessionmaker[Session]
) -> None:
    from controller.db.models import DeviceEvent

    device = world.counties[HOME].device_id
    with sessions.begin() as s:
        s.add(DeviceEvent(device_id=device, at=NOW, kind="KIND_STARTED", message="", details={}))
    page = (await national.get(f"/devices/{device}?lang=en")).text
    assert "<td>started</td>" in page and "KIND_STARTED" not in page
    zh = (await national.get(f"/devices/{device}")).text
    assert "<td>启动</td>" in zh
    overview = (await national.get(f"/?region={HOME}&lang=en")).text
    row = re.search(r'<tr data-region="370902001">(.*?)</tr>', overview, re.S)
    assert row is not None and "泰山区 001 乡镇" in row.group(1)
    assert "乡镇 370902001" not in overview
    listing = (await national.get("/devices?lang=en")).text
    assert "2 devices" in listing
    me = (await national.get("/me?lang=en")).text
    assert "ministry (ministry)" in me and "部级" not in me
