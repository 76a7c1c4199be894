"""A county admin in a real Chromium, tried as a new user would: sign in, see only their own
county on the progress page, drill down to a township, review its records field by field, send
one back with a reason, approve the next, download the progress sheet and open it; a link into
the neighbouring county is refused. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from controller.db.models import AccessDenial, Record
from muster.clock import VirtualClock
from tests.fixtures.admin_login import login
from tests.fixtures.browser import screenshot
from tests.fixtures.components import free_port, wait_for_port
from tests.unit.admin_world import (
    HOME,
    NEIGHBOUR,
    NOW,
    PASSWORD,
    World,
    attach_files,
    build_world,
    sample_image,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session], World]]:
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    world = build_world(sessions, people=5, collected=3)
    key = attach_files(
        sessions,
        world.counties[HOME].record_ids[0],
        {"photo.jpg": sample_image("jpeg", 1), "signature.png": sample_image("png", 2)},
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_admin_app(sessions, clock=VirtualClock(NOW), upload_keys=lambda: {1: key}),
            host="127.0.0.1",
            port=port,
            log_level="error",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port("127.0.0.1", port, 20, what="admin server")
    yield f"http://127.0.0.1:{port}", sessions, world
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def shot(page: Page, name: str) -> None:
    screenshot(page, f"county-{name}")


def test_county_admin_reviews_a_township_and_exports_progress(
    served: tuple[str, sessionmaker[Session], World], chromium: Browser, tmp_path: Path
) -> None:
    """Everything a county admin needs in one walk through the pages, in Chinese."""
    base, sessions, world = served
    home, neighbour = world.counties[HOME], world.counties[NEIGHBOUR]
    page = chromium.new_page(accept_downloads=True)

    page.goto(f"{base}/progress")
    expect(page).to_have_url(f"{base}/login?next=%2Fprogress")
    page.fill("#username", "county")
    page.fill("#password", "wrong-passw0rd")
    page.click("button[type=submit]")
    expect(page.get_by_test_id("login-error")).to_contain_text("用户名或密码错误")
    login(page, base, "county", PASSWORD)

    page.goto(f"{base}/progress")
    expect(page.locator("h1")).to_contain_text("泰山区")
    rows = page.locator("#progress tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-region", home.township[:9])
    expect(page.get_by_test_id("total-slice")).to_contain_text("5")
    expect(page.get_by_test_id("total-missing")).to_contain_text("2")
    assert "岱岳区" not in page.content() and neighbour.township[:9] not in page.content()
    expect(page.get_by_test_id("completion-chart")).to_be_visible()
    shot(page, "progress")

    # The township: who is still missing, then its records to review.
    rows.first.locator("a").first.click()
    expect(page.locator("#missing tbody tr")).to_have_count(2)
    page.get_by_role("link", name="审核").last.click()
    expect(page.locator("#records tbody tr")).to_have_count(3)
    page.locator("#records tbody tr").first.get_by_role("link", name="打开").click()

    # The first record has a mistyped name: it shows against the initial data, with the
    # photo and signature the clerk took, who entered and checked it, and on which device.
    expect(page.locator("tr[data-field=name] td.differs")).to_be_visible()
    for testid in ("att-photo", "att-signature"):
        image = page.get_by_test_id(testid)
        expect(image).to_be_visible()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
    expect(page.get_by_test_id("entered-by")).to_have_text("clerk-a")
    expect(page.get_by_test_id("reviewed-by")).to_have_text("clerk-b")
    expect(page.get_by_test_id("device")).to_have_text(home.device_id)
    expect(page.locator("tr[data-field=ethnicity] td").nth(1)).to_contain_text("汉族")
    shot(page, "record")
    first_url = page.url
    name = page.locator("tr[data-field=name] td").nth(1).inner_text().split()[0]
    page.click("[data-testid=return]")
    expect(page.get_by_test_id("review-error")).to_contain_text("原因")
    page.fill("[data-testid=reason]", "姓名与身份证不符，请核对后重录")
    page.click("[data-testid=return]")
    # Asked first; nothing changes until the reviewer confirms.
    expect(page.get_by_test_id("confirm")).to_have_text("确认退回")
    expect(page.get_by_test_id("confirm-reason")).to_have_text("姓名与身份证不符，请核对后重录")
    shot(page, "confirm-return")
    page.get_by_test_id("confirm").click()
    # On to the next record of the township, saying what was done; approve it.
    page.wait_for_url(lambda url: url.split("?")[0] != first_url and "/review/" in url)
    expect(page.get_by_test_id("review-done")).to_have_text(
        f"已退回：{name}，原因：姓名与身份证不符，请核对后重录"
    )
    page.click("[data-testid=approve]")
    expect(page.get_by_test_id("confirm")).to_have_text("确认通过")
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("review-done")).to_contain_text("已通过：")

    with sessions() as s:
        statuses = sorted(
            s.scalars(select(Record.review_status).where(Record.township_code == home.township))
        )
    assert statuses == ["approved", "collected", "returned"]

    # The progress sheet, downloaded as a user does and opened.
    page.goto(f"{base}/progress")
    expect(page.get_by_test_id("total-reviewed")).to_contain_text("2")
    with page.expect_download() as download_info:
        page.get_by_test_id("export-progress").click()
    path = tmp_path / "progress.xlsx"
    download_info.value.save_as(path)
    sheet = load_workbook(path)["进度"]
    values = [[c.value for c in r] for r in sheet.iter_rows(min_row=4)]
    assert values[0][:7] == [home.township[:9], values[0][1], 5, 3, 2, 1, 2]
    assert all(NEIGHBOUR not in str(v[0]) for v in values)

    # A link into the neighbouring county is refused, and the refusal is on record.
    page.goto(f"{base}/progress?region={NEIGHBOUR}")
    expect(page.get_by_test_id("denied")).to_contain_text("不在您的管辖范围")
    page.goto(f"{base}/review/{neighbour.record_ids[0]}")
    expect(page.get_by_test_id("denied")).to_be_visible()
    shot(page, "denied")
    with sessions() as s:
        reasons = list(
            s.scalars(select(AccessDenial.path).where(AccessDenial.username == "county"))
        )
    # the wrong password, then the two links into the neighbour
    assert reasons == [
        "/login",
        f"/progress?region={NEIGHBOUR}",
        f"/review/{neighbour.record_ids[0]}",
    ]

    # English on request.
    page.goto(f"{base}/progress?lang=en")
    expect(page.locator("h1")).to_contain_text("Collection progress")

    # At 800 px the navigation wraps whole links, never one character a line.
    page.set_viewport_size({"width": 800, "height": 700})
    for lang in ("zh", "en"):
        page.goto(f"{base}/progress?lang={lang}")
        links = page.locator("nav.top a")
        heights = [links.nth(i).bounding_box()["height"] for i in range(links.count())]  # type: ignore[index]
        assert max(heights) < 2 * min(heights), heights
    shot(page, "narrow")

    # /docs comes up with every request to another host refused.
    outside: list[str] = []
    page.route(
        lambda url: not url.startswith(base),
        lambda route: (outside.append(route.request.url), route.abort()),
    )
    page.goto(f"{base}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("muster admin")
    assert outside == []
