"""The collection console in a real Chromium, tried the way township clerks would (S-02, S-03,
S-05, S-07): a real controller and edge daemon process, real Mosquitto, the SAM reader simulator
on a TCP port with the visitor's card put on it when they hand it over, and a video file as the
camera. One clerk finds the person, reads the card, takes the photo and fills the form; a
second clerk reviews; the person signs on screen; the record is sealed and reaches the centre
with its audit, photo and signature. Screenshots land in artifacts/screenshots/console-*.png.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from controller.db.models import Attachment
from controller.devices.pki_store import load_upload_keys
from controller.records.attachment_chunks import attachment_chunk
from edge.simulators.idcard import IdCardSimulator, SimCard, running, synthetic_cards
from muster.classified import ADVICE
from muster.clock import SystemClock
from muster.crypto import open_attachment
from tests.fixtures.browser import screenshot
from tests.fixtures.components import free_port, wait_for_port
from tests.fixtures.fleet import MUSTER, ControllerProcess, EdgeProcess, Fleet, wait_until
from tests.fixtures.mosquitto import MosquittoBroker

TOWNSHIP = "370902001000"
PASSWORD = "caiji2018ok"
CATEGORIES = ("retired_soldier", "disabled_soldier", "martyr_family")


def shot(page: Page, name: str) -> None:
    screenshot(page, f"console-{name}")


def add_clerk(controller: ControllerProcess, username: str, name: str) -> None:
    subprocess.run(
        [
            *MUSTER,
            "controller",
            "clerk",
            "add",
            "--township",
            TOWNSHIP,
            "--username",
            username,
            "--display-name",
            name,
            "--password-stdin",
            *controller._db_args(),
        ],
        input=PASSWORD + "\n",
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )


def import_people(controller: ControllerProcess, cards: list[SimCard], path: Path) -> None:
    """The initial data knows the three visitors, each in a different category."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "township_code",
                "name",
                "id_number",
                "sex",
                "birth_date",
                "category",
                "relation",
                "political_status",
                "enlistment_date",
                "discharge_date",
                "rank_class",
                "household_registration",
            ]
        )
        for card, category in zip(cards, CATEGORIES, strict=True):
            t = card.text
            veteran = category != "martyr_family"
            writer.writerow(
                [
                    TOWNSHIP,
                    t.name,
                    t.id_number,
                    t.sex.value,
                    t.birth_date.isoformat(),
                    category,
                    "" if veteran else "父母",
                    "群众",
                    t.birth_date.replace(year=t.birth_date.year + 18).isoformat()
                    if veteran
                    else "",
                    t.birth_date.replace(year=t.birth_date.year + 21).isoformat()
                    if veteran
                    else "",
                    "义务兵" if veteran else "",
                    "泰安市泰山区",
                ]
            )
    subprocess.run(
        [
            *MUSTER,
            "controller",
            "import",
            "--file",
            str(path),
            *controller._db_args(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def console_device(
    fleet: Fleet,
    controller: ControllerProcess,
    tmp_path: Path,
    reader_url: str,
    video: Path,
    *,
    kind: str = "kiosk",
    console_extra: str = "",
) -> tuple[EdgeProcess, str]:
    """A simulator device with the SAM reader at ``reader_url``, ``video`` as its camera and
    the console on; returns it and the console's URL once the clerks' accounts are on it."""
    console_port = free_port()
    profile = tmp_path / f"{kind}.yaml"
    profile.write_text(
        f"name: simulator\nmodel: test {kind}\nkind: simulator\n"
        f"reader: {{kind: sam, port: '{reader_url}'}}\n"
        f"camera: {{kind: opencv, source: '{video}'}}\n"
        "uplink: {heartbeat_interval_s: 2}\noutbox: {min_disk_free_bytes: 0}\n"
        f"console: {{enabled: true, port: {console_port}{console_extra}}}\n",
        encoding="utf-8",
    )
    edge = fleet.edge(controller, profile)
    wait_for_port("127.0.0.1", console_port, 90, process=edge.process, what="console")
    wait_until(
        lambda: (edge.state_dir / "console" / "clerks.json").exists(),
        60,
        "clerk accounts delivered to the device",
    )
    return edge, f"http://127.0.0.1:{console_port}/"


def login(context: BrowserContext, url: str, username: str) -> Page:
    page = context.new_page()
    page.goto(url + "login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("heading", name="查找人员")).to_be_visible()
    return page


def fill_category_fields(page: Page, category: str) -> None:
    page.locator("select[name=political_status]").select_option(label="中共党员")
    page.locator("input[name=address]").fill("泰安市泰山区上高街道东关路12号")
    page.locator("input[name=phone]").fill("13905381234")
    page.locator("select[name=employment_status]").select_option(label="务农")
    page.locator("select[name=housing]").select_option(label="自有住房")
    page.locator("input[name=housing_area]").fill("86")
    page.get_by_label("新型农村合作医疗").check()
    if category == "retired_soldier":
        page.locator("select[name=resettlement_mode]").select_option(label="自主就业")
    elif category == "disabled_soldier":
        page.locator("select[name=disability_grade]").select_option(label="六级")
        page.locator("select[name=disability_nature]").select_option(label="因公")
        page.locator("input[name=disability_certificate]").fill("鲁军残字第0012345号")
    else:
        page.locator("input[name=soldier_name]").fill("张卫国")
        page.locator("input[name=soldier_death_date]").fill("1979-02-20")
        page.locator("input[name=death_certificate]").fill("烈证字第001234号")
    page.locator("textarea[name=main_requests]").fill("希望解决看病报销比例低的问题")


def controller_payloads(controller: ControllerProcess) -> list[dict[str, Any]]:
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT payload FROM records")).all()
    finally:
        engine.dispose()
    return [json.loads(p) if isinstance(p, str) else p for (p,) in rows]


def controller_attachment(controller: ControllerProcess, record_id: str, name: str) -> bytes:
    """An attachment as the centre holds it: verified chunks, opened with its upload keys."""
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    try:
        with Session(engine) as session:
            rows = session.scalars(
                select(Attachment)
                .where(
                    Attachment.record_id == record_id,
                    Attachment.name == name,
                    Attachment.verified_at.is_not(None),
                )
                .order_by(Attachment.chunk_index)
            ).all()
            chunks = [attachment_chunk(row) for row in rows]
    finally:
        engine.dispose()
    return open_attachment(chunks, load_upload_keys(controller.data_dir / "pki"))


def test_enter_review_sign_seal_in_chromium(
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    chromium: Browser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three people of three categories go from the initial data through card, photo, form,
    review by a second clerk and on-screen signature to the controller; the entering clerk
    cannot review their own entry; a unit designation is refused with what to write instead;
    the confirmation sheet is a PDF; the sealed records carry the audit, photo and signature."""
    monkeypatch.setenv("MUSTER_EDGE_HEALTH_EVERY_S", "3")
    cards = synthetic_cards("370902", 3, seed=11)
    controller = fleet.controller(mqtt_url=mosquitto.url)
    add_clerk(controller, "li.li", "李丽")
    add_clerk(controller, "wang.fang", "王芳")
    import_people(controller, cards, tmp_path / "people.csv")
    video = tmp_path / "camera.avi"
    subprocess.run(
        [*MUSTER, "sim", "camera", "--out", str(video), "--seconds", "3"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    reader = IdCardSimulator(card=None, clock=SystemClock())
    with running(reader) as sim:
        edge, url = console_device(fleet, controller, tmp_path, sim.url, video)
        entry = chromium.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
        reviewer = chromium.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
        page = entry.new_page()
        page.goto(url)
        expect(page.get_by_role("heading", name="工作人员登录")).to_be_visible()
        shot(page, "login")
        page.close()
        clerk_a = login(entry, url, "li.li")
        clerk_b = login(reviewer, url, "wang.fang")

        # The slice arrives after enrolment; the clerk searches until the township's people are in.
        def found(query: str) -> bool:
            clerk_a.goto(url + f"?q={query}")
            return clerk_a.locator("#results tr").count() > 1

        from pypinyin import Style, lazy_pinyin

        queries = [
            "".join(lazy_pinyin(cards[0].text.name, style=Style.FIRST_LETTER)),
            cards[1].text.name,
            cards[2].text.id_number[-8:],
        ]
        wait_until(lambda: found(queries[0]), 90, "the initial data in the console's search")
        shot(clerk_a, "search")

        record_ids: list[str] = []
        for card, category, query in zip(cards, CATEGORIES, queries, strict=True):
            clerk_a.goto(url + f"?q={query}")
            row = clerk_a.locator("#results tr", has_text=card.text.id_number)
            row.get_by_role("button", name="开始采集").click()
            expect(clerk_a.locator("h1")).to_contain_text("信息采集表")
            record_id = clerk_a.url.rsplit("/", 1)[1]
            record_ids.append(record_id)

            reader.insert(card)
            clerk_a.get_by_role("button", name="读取身份证").click()
            expect(clerk_a.locator("#message")).to_contain_text("已读取身份证")
            expect(clerk_a.locator("input[name=id_number]")).to_have_value(card.text.id_number)
            reader.remove()

            expect(clerk_a.locator("#quality")).to_contain_text("画面合格", timeout=20_000)
            clerk_a.get_by_role("button", name="拍照").click()
            expect(clerk_a.locator("#message")).to_contain_text("照片合格")

            fill_category_fields(clerk_a, category)
            if category == "retired_soldier":
                clerk_a.locator("input[name=service_unit]").fill("3师5团2连")
                clerk_a.get_by_role("button", name="保存草稿").click()
                expect(clerk_a.locator("#error")).to_contain_text(ADVICE)
                expect(clerk_a.locator("input[name=service_unit]")).to_have_value("")
                shot(clerk_a, "classified-refused")
                clerk_a.locator("input[name=service_unit]").fill("陆军")
                fill_category_fields(clerk_a, category)
                shot(clerk_a, "form")
            clerk_a.get_by_role("button", name="提交复核").click()
            expect(clerk_a.locator("#message")).to_contain_text("等待另一名工作人员复核")

            # The clerk who entered it is refused as its reviewer, in the page and at the server.
            expect(clerk_a.locator("#own-entry")).to_be_visible()
            csrf = clerk_a.locator("input[name=csrf]").first.input_value()
            refused = clerk_a.request.post(
                url + f"records/{record_id}/review",
                form={"csrf": csrf, "decision": "approve", "note": ""},
            )
            assert refused.status == 403
            assert "不能复核自己录入的记录" in refused.text()
            if category == "retired_soldier":
                shot(clerk_a, "own-entry-refused")

            clerk_b.goto(url)
            clerk_b.get_by_role("link", name=card.text.name).click()
            expect(clerk_b.locator("#changes")).to_contain_text("政治面貌")
            if category == "retired_soldier":
                shot(clerk_b, "review")
            clerk_b.get_by_role("button", name="复核通过").click()
            expect(clerk_b.locator("#message")).to_contain_text("复核通过")

            pad = clerk_b.locator("#pad")
            pad.scroll_into_view_if_needed()
            box = pad.bounding_box()
            assert box is not None
            clerk_b.mouse.move(box["x"] + 40, box["y"] + 120)
            clerk_b.mouse.down()
            for step in range(1, 12):
                clerk_b.mouse.move(box["x"] + 40 + step * 30, box["y"] + 120 - (step % 3) * 35)
            clerk_b.mouse.up()
            if category == "retired_soldier":
                shot(clerk_b, "signature")
            clerk_b.get_by_role("button", name="确认签字").click()
            expect(clerk_b.locator("#message")).to_contain_text("已签字")
            sheet = clerk_b.request.get(url + f"records/{record_id}/sheet.pdf")
            assert sheet.headers["content-type"] == "application/pdf"
            assert sheet.body().startswith(b"%PDF")
            (tmp_path / f"sheet-{category}.pdf").write_bytes(sheet.body())
            clerk_b.get_by_role("button", name="封存并上传…").click()
            expect(clerk_b.locator("#confirm-name")).to_have_text(card.text.name)
            clerk_b.get_by_role("button", name="确认封存").click()
            expect(clerk_b.locator("#sealed")).to_contain_text(card.text.name)
        shot(clerk_b, "sealed")

        wait_until(
            lambda: len(controller_payloads(controller)) >= 3, 60, "three records at the centre"
        )
        entry.close()
        reviewer.close()

    by_id = {p["record_id"]: p for p in controller_payloads(controller)}
    assert set(record_ids) <= set(by_id)
    stored = [by_id[r] for r in record_ids]
    assert [p["category"] for p in stored] == list(CATEGORIES)
    for payload, card in zip(stored, cards, strict=True):
        assert payload["person"]["id_number"] == card.text.id_number
        assert (payload["entered_by"], payload["reviewed_by"]) == ("li.li", "wang.fang")
        actions = [a["action"] for a in payload["audit"]]
        assert actions[-4:] == ["entered", "reviewed", "signed", "sealed"]
        entered = next(a for a in payload["audit"] if a["action"] == "entered")
        assert "political_status" in entered["changes"], "the change against the initial data"
        assert set(payload["attachments"]) == {"photo.jpg", "signature.png"}
        for name, ref in payload["attachments"].items():
            data = controller_attachment(controller, payload["record_id"], name)
            assert (len(data), hashlib.sha256(data).hexdigest()) == (ref["size"], ref["sha256"])
        assert controller_attachment(controller, payload["record_id"], "photo.jpg")[:2] == (
            b"\xff\xd8"
        ), "the photo arrives as the JPEG the camera took"
        assert payload["fields"]["main_requests"] == "希望解决看病报销比例低的问题"
    assert stored[0]["fields"]["service_unit"] == "陆军"
    assert stored[2]["relation"] == "父母"
    # The device keeps no plaintext of what it sealed.
    assert not any(
        card.text.name.encode() in p.read_bytes()
        for card in cards
        for p in (edge.state_dir / "console").glob("drafts.sqlite3*")
    )
