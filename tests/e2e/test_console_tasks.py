"""A record the county sends back, end to end in a real Chromium (issue 16, S-05, S-07): a real
controller on PostgreSQL, Mosquitto, an edge daemon with its console, the SAM reader simulator
and a video file as the camera. Clerk A collects a person, clerk B checks (复核) and the person
signs; the sealed record reaches the centre. Search marks the person as collected, and a
clerk's "我的录入" holds only their own drafts. The county admin sees the photo and signature,
returns the record with a reason; the device's next Health brings the return to the clerks'
home as a task; the clerk corrects it from its earlier values, the second clerk sees what
changed, the person signs again and the corrected record supersedes the returned one at the
centre. Screenshots land in artifacts/screenshots/tasks-*.png.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from edge.simulators.idcard import IdCardSimulator, SimCard, running, synthetic_cards
from muster.clock import SystemClock
from tests.e2e.test_console import (
    add_clerk,
    console_device,
    fill_category_fields,
    import_people,
    login,
)
from tests.fixtures.admin_login import login as admin_login
from tests.fixtures.browser import screenshot
from tests.fixtures.fleet import MUSTER, Fleet, wait_until
from tests.fixtures.mosquitto import MosquittoBroker

COUNTY_PASSWORD = "County-passw0rd"
REASON = "联系电话与本人不符，请核对后更正"
OLD_PHONE, NEW_PHONE = "13905381234", "13905389876"


def shot(page: Page, name: str) -> None:
    screenshot(page, f"tasks-{name}")


def section(page: Page, title: str) -> Locator:
    """A card of the console's home by the start of its heading (headings carry a count)."""
    return page.locator(
        "section.card", has=page.get_by_role("heading", name=re.compile(f"^{title}（"))
    )


def reload_until(page: Page, url: str, ready: Locator, what: str, timeout: float = 90) -> None:
    """Open ``url`` again until ``ready`` shows: what a clerk does waiting for the centre."""

    def shown() -> bool:
        page.goto(url)
        return ready.count() > 0

    wait_until(shown, timeout, what, interval=1.0)


def sign(page: Page) -> None:
    pad = page.locator("#pad")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 40, box["y"] + 120)
    page.mouse.down()
    for step in range(1, 12):
        page.mouse.move(box["x"] + 40 + step * 30, box["y"] + 120 - (step % 3) * 35)
    page.mouse.up()
    page.get_by_role("button", name="确认签字").click()
    expect(page.locator("#message")).to_contain_text("已签字")


def review_sign_seal(page: Page, url: str, card: SimCard) -> None:
    """Clerk B opens the record waiting for them, passes 复核, the person signs, B seals."""
    page.goto(url)
    section(page, "待复核").get_by_role("link", name=card.text.name).click()
    expect(page.locator("h1")).to_contain_text("信息采集表")
    page.get_by_role("button", name="复核通过").click()
    expect(page.locator("#message")).to_contain_text("复核通过")
    sign(page)
    page.get_by_role("button", name="封存并上传…").click()
    expect(page.locator("#confirm-name")).to_have_text(card.text.name)
    expect(page.locator("#seal-confirm")).to_contain_text(card.text.id_number)
    page.get_by_role("button", name="确认封存").click()
    expect(page.locator("#sealed")).to_contain_text(card.text.name)


def take_photo(page: Page) -> None:
    expect(page.locator("#quality")).to_contain_text("画面合格", timeout=20_000)
    page.get_by_role("button", name="拍照").click()
    expect(page.locator("#message")).to_contain_text("照片合格")


def images_loaded(page: Page) -> None:
    for testid in ("att-photo", "att-signature"):
        image = page.get_by_test_id(testid)
        expect(image).to_be_visible()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )


def test_returned_record_is_corrected_and_resealed_in_chromium(
    postgres_url: str,  # before the fleet: the database outlives the controller using it
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    chromium: Browser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Collect, seal and upload; the county returns it; the return reaches the clerks as a task
    with the reason; corrected from the earlier values, re-checked, re-signed and resealed, the
    new record supersedes the old one and the county sees its photo and signature."""
    # The device asks the centre for its tasks every 2 s instead of every 10 minutes.
    monkeypatch.setenv("MUSTER_EDGE_HEALTH_EVERY_S", "2")
    cards = synthetic_cards("370902", 3, seed=23)
    person, other = cards[0], cards[1]
    name = person.text.name
    controller = fleet.controller(mqtt_url=mosquitto.url, database_url=postgres_url)
    add_clerk(controller, "li.li", "李丽")
    add_clerk(controller, "wang.fang", "王芳")
    controller.add_admin("county", "county", "370902", COUNTY_PASSWORD)
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
        _edge, url = console_device(fleet, controller, tmp_path, sim.url, video)
        entry, reviewer, county = (
            chromium.new_context(viewport={"width": 1024, "height": 768}, locale="zh-CN")
            for _ in range(3)
        )
        clerk_a = login(entry, url, "li.li")
        clerk_b = login(reviewer, url, "wang.fang")
        search = url + f"?q={person.text.id_number}"
        reload_until(
            clerk_a,
            search,
            clerk_a.locator("#results tr", has_text=person.text.id_number),
            "the initial data in the console's search",
        )

        # 1. Clerk A collects: card from the reader, photo, form; clerk B checks, signs, seals.
        clerk_a.locator("#results tr", has_text=person.text.id_number).get_by_role(
            "button", name="开始采集"
        ).click()
        expect(clerk_a.locator("h1")).to_contain_text("信息采集表")
        first_id = clerk_a.url.rsplit("/", 1)[1]
        reader.insert(person)
        clerk_a.get_by_role("button", name="读取身份证").click()
        expect(clerk_a.locator("#message")).to_contain_text("已读取身份证")
        expect(clerk_a.locator("input[name=id_number]")).to_have_value(person.text.id_number)
        reader.remove()
        take_photo(clerk_a)
        fill_category_fields(clerk_a, "retired_soldier")
        clerk_a.locator("input[name=service_unit]").fill("陆军")
        clerk_a.get_by_role("button", name="提交复核").click()
        expect(clerk_a.locator("#message")).to_contain_text("等待另一名工作人员复核")
        review_sign_seal(clerk_b, url, person)
        shot(clerk_b, "sealed")

        # 2. Search marks the person, uploaded once the centre acknowledges it; there is no way
        # to start them again, and the server refuses a second record for them.
        row = clerk_b.locator("#results tr", has_text=person.text.id_number)
        reload_until(
            clerk_b,
            search,
            row.locator(".mark", has_text="已上传"),
            "the record acknowledged by the centre",
        )
        expect(row).to_contain_text("已采集，不能重复采集")
        expect(row.get_by_role("button", name="开始采集")).to_have_count(0)
        shot(clerk_b, "search-collected")
        csrf = clerk_b.locator("input[name=csrf]").first.input_value()
        again = clerk_b.request.post(
            url + "records", form={"csrf": csrf, "id_number": person.text.id_number}
        )
        assert again.status == 409, again.text()
        assert "此人已采集（已上传），不能重复采集" in again.text()

        # Clerk A's draft of another person: in A's "我的录入", not in B's; B's search opens it.
        clerk_a.goto(url + f"?q={other.text.id_number}")
        clerk_a.locator("#results tr", has_text=other.text.id_number).get_by_role(
            "button", name="开始采集"
        ).click()
        expect(clerk_a.locator("h1")).to_contain_text("信息采集表")
        draft_id = clerk_a.url.rsplit("/", 1)[1]
        clerk_a.goto(url)
        expect(section(clerk_a, "我的录入")).to_contain_text(other.text.name)
        clerk_b.goto(url)
        expect(section(clerk_b, "我的录入")).not_to_contain_text(other.text.name)
        expect(section(clerk_b, "其他工作人员的录入")).to_contain_text(other.text.name)
        shot(clerk_b, "my-drafts")
        clerk_b.goto(url + f"?q={other.text.id_number}")
        other_row = clerk_b.locator("#results tr", has_text=other.text.id_number)
        expect(other_row.locator(".mark")).to_contain_text("录入中")
        other_row.get_by_role("link", name="打开已有记录").click()
        assert clerk_b.url.rsplit("/", 1)[1] == draft_id
        expect(clerk_b.locator("input[name=name]")).to_have_value(other.text.name)

        # 3. The county admin sees the photo and signature, and returns the record.
        admin = county.new_page()
        admin_login(admin, controller.admin_url, "county", COUNTY_PASSWORD)
        admin.goto(f"{controller.admin_url}/review/{first_id}")
        expect(admin.locator("h1")).to_contain_text(name)
        images_loaded(admin)
        expect(admin.get_by_test_id("entered-by")).to_have_text("li.li")
        expect(admin.get_by_test_id("reviewed-by")).to_have_text("wang.fang")
        shot(admin, "county-record")
        admin.fill("[data-testid=reason]", REASON)
        admin.click("[data-testid=return]")
        expect(admin.get_by_test_id("confirm")).to_have_text("确认退回")
        expect(admin.get_by_test_id("confirm-reason")).to_have_text(REASON)
        admin.get_by_test_id("confirm").click()
        expect(admin.get_by_test_id("review-done")).to_contain_text(f"已退回：{name}")
        expect(admin.get_by_test_id("review-done")).to_contain_text(REASON)
        shot(admin, "county-returned")

        # 4. The next Health brings the return: a task on the clerks' home with the reason.
        task = clerk_a.locator(f"#task-list tr[data-task='returned/{first_id}']")
        reload_until(clerk_a, url, task, "the returned record in the console's tasks")
        expect(task).to_contain_text("县级退回")
        expect(task).to_contain_text(name)
        expect(task.locator(".reason")).to_contain_text(REASON)
        shot(clerk_a, "task")
        task.get_by_role("button", name="开始更正").click()
        expect(clerk_a.locator("h1")).to_contain_text("信息采集表")
        second_id = clerk_a.url.rsplit("/", 1)[1]
        assert second_id != first_id
        expect(clerk_a.locator("#task-note")).to_contain_text(REASON)
        # The earlier values, not a blank form.
        expect(clerk_a.locator("input[name=name]")).to_have_value(name)
        expect(clerk_a.locator("input[name=id_number]")).to_have_value(person.text.id_number)
        expect(clerk_a.locator("input[name=phone]")).to_have_value(OLD_PHONE)
        expect(clerk_a.locator("input[name=address]")).to_have_value(
            "泰安市泰山区上高街道东关路12号"
        )
        expect(clerk_a.locator("input[name=service_unit]")).to_have_value("陆军")
        shot(clerk_a, "correction")
        clerk_a.locator("input[name=phone]").fill(NEW_PHONE)
        take_photo(clerk_a)
        clerk_a.get_by_role("button", name="提交复核").click()
        expect(clerk_a.locator("#message")).to_contain_text("等待另一名工作人员复核")
        # The home says the correction is under way instead of offering to start it again.
        clerk_a.goto(url)
        expect(task).to_contain_text("继续处理")

        # Clerk B's 复核 shows exactly what the correction changed.
        clerk_b.goto(url)
        section(clerk_b, "待复核").get_by_role("link", name=name).click()
        changes = clerk_b.locator("#changes")
        expect(changes).to_contain_text("联系电话")
        expect(changes.locator("td.before")).to_have_text([OLD_PHONE])
        expect(changes.locator("td.after")).to_have_text([NEW_PHONE])
        shot(clerk_b, "correction-review")
        clerk_b.goto(url)
        review_sign_seal(clerk_b, url, person)

        # Uploaded: the task waits for the centre's word, then leaves the list.
        reload_until(
            clerk_a,
            url,
            clerk_a.locator("#tasks", has_text="目前没有需要处理的任务"),
            "the returned record's task closed by the corrected record",
        )
        shot(clerk_a, "task-closed")
        entry.close()
        reviewer.close()

    # 5. At the centre the corrected record supersedes the returned one, and names it.
    admin.goto(f"{controller.admin_url}/review/{first_id}")
    expect(admin.get_by_test_id("status")).to_contain_text("已被取代")
    expect(admin.locator("body")).to_contain_text(f"已被更正后的记录 {second_id} 取代")
    old = admin.request.get(f"{controller.admin_url}/api/v1/records/{first_id}")
    assert old.ok, old.text()
    assert old.json()["status"] == "superseded"
    assert old.json()["superseded_by"] == second_id
    expect(admin.get_by_test_id("superseded-by")).to_have_attribute(
        "href", f"/review/{second_id}?lang=zh"
    )
    shot(admin, "county-superseded")
    admin.get_by_test_id("superseded-by").click()  # the old record leads to its correction
    expect(admin).to_have_url(re.compile(f"/review/{second_id}"))
    expect(admin.get_by_test_id("status")).to_contain_text("待审核")
    expect(admin.locator("tr[data-field=phone] td").nth(1)).to_contain_text(NEW_PHONE)
    images_loaded(admin)
    expect(admin.get_by_test_id("entered-by")).to_have_text("li.li")
    expect(admin.get_by_test_id("reviewed-by")).to_have_text("wang.fang")
    shot(admin, "county-corrected")
    county.close()
