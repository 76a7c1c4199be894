"""The annual confirmation's self-service page in a real Chromium on a phone-sized screen: a
person types the ID number and mobile number and sends a camera image file; the centre keeps
it as face check pending; the county admin sees the photo in the queue, confirms by a manual
check with a reason, and the progress page counts one self-service confirmation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import add_admin
from controller.admin import create_admin_app
from controller.confirmation.campaigns import create_campaign
from controller.confirmation.roll import import_roll
from controller.db import make_engine, migrate, session_factory
from controller.db.models import ConfirmationSubject, SelfServiceAttempt
from muster.clock import VirtualClock
from tests.fixtures.admin_login import login
from tests.fixtures.browser import screenshot
from tests.fixtures.components import free_port, wait_for_port
from tests.unit.confirmation_world import (
    COUNTY,
    PEOPLE,
    at_cst,
    camera_jpeg,
    load_people,
    write_roll,
)

PASSWORD = "County-passw0rd"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    clock = VirtualClock(at_cst(2026, 10, 21))
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    load_people(sessions, tmp_path, clock)
    with sessions.begin() as session:
        campaign_id = create_campaign(session, year=2026, county=COUNTY, clock=clock).id
        add_admin(
            session,
            username="guanyun",
            role="county",
            region=COUNTY,
            password=PASSWORD,
            now=clock.now(),
        )
    import_roll(sessions, campaign_id, write_roll(tmp_path / "roll.csv"), clock=clock)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_admin_app(sessions, clock=clock), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port("127.0.0.1", port, 20, what="admin server")
    yield f"http://127.0.0.1:{port}", sessions
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def test_a_person_confirms_from_a_phone_and_a_clerk_checks_the_photo(
    site: tuple[str, sessionmaker[Session]], chromium: Browser, tmp_path: Path
) -> None:
    base, sessions = site
    photo = tmp_path / "IMG_20261021_101500.jpg"
    camera_jpeg(photo)
    person = PEOPLE["b1970"]

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(f"{base}/self-service/confirm")
    assert page.locator("h1").inner_text() == "优抚对象年度确认（自助）"
    assert page.locator("#selfie").get_attribute("capture") == "user"
    # A typo in the number first: named on the page, nothing confirmed.
    page.fill("#id_number", person.id_number[:-1] + ("1" if person.id_number[-1] != "1" else "2"))
    page.fill("#phone", "13900001111")
    page.set_input_files("#selfie", str(photo))
    page.click("button[type=submit]")
    assert page.get_by_test_id("error").get_attribute("data-field") == "id_number"
    page.fill("#id_number", person.id_number)
    page.set_input_files("#selfie", str(photo))
    page.click("button[type=submit]")
    assert "人脸核验完成后确认生效" in page.get_by_test_id("received").inner_text()
    screenshot(page, "confirmation-self-service-received")
    assert person.name not in page.content()
    phone.close()

    with sessions() as session:
        attempt = session.scalars(
            select(SelfServiceAttempt).where(SelfServiceAttempt.outcome == "pending_face")
        ).one()
        assert attempt.selfie == photo.read_bytes()

    admin = chromium.new_page()
    login(admin, base, "guanyun", PASSWORD)
    admin.goto(f"{base}/confirmation/self-service?year=2026&county={COUNTY}")
    row = admin.locator(f"tr[data-attempt='{attempt.id}']")
    assert person.id_number in row.inner_text()
    assert (
        row.locator("img").evaluate("img => img.naturalWidth") == 480
    )  # portrait, as a phone takes it
    row.locator("input[name=reason]").fill("照片与档案照片一致，电话回访确认为本人")
    row.locator("button[value=accept]").click()
    admin.wait_for_url("**/confirmation/self-service?**")
    assert admin.locator(f"tr[data-attempt='{attempt.id}']").count() == 0
    with sessions() as session:
        subject = session.scalars(
            select(ConfirmationSubject).where(ConfirmationSubject.id_number == person.id_number)
        ).one()
        assert (subject.status, subject.channel, subject.face_result) == (
            "confirmed",
            "self_service",
            "manual",
        )

    admin.goto(f"{base}/confirmation?year=2026&county={COUNTY}&lang=en")
    total_young = admin.locator(f"#progress tr[data-region='{COUNTY}'][data-band='<70']")
    cells = total_young.locator("td").all_inner_texts()
    assert cells[2] == "9" and cells[3] == "1"  # nine under 70 in the county, one confirmed
    assert cells[-2] == "1"  # by self-service
    assert admin.get_by_test_id("behind-warning").is_visible()
    screenshot(admin, "confirmation-progress")
