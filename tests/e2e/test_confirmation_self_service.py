"""The annual confirmation's self-service page in a real Chromium on a phone-sized screen, the
centre face-checking with the real models against the photos on file (``tests/fixtures/faces``):
a photo of a coffee cup is asked to be retaken; another man's face for Obama's record is
received and goes to the county admin's queue with its distance, the selfie beside the photo on
file, where the clerk refuses it with a reason; Obama's own selfie for a second record confirms
him online, and the progress page counts that one self-service confirmation."""

from __future__ import annotations

import threading
import time
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
from muster.crypto import generate_upload_key
from tests.fixtures.admin_login import login
from tests.fixtures.browser import screenshot
from tests.fixtures.components import free_port, wait_for_port
from tests.fixtures.face_records import FACES, face_photo, store_photo_records
from tests.unit.confirmation_world import (
    COUNTY,
    PEOPLE,
    at_cst,
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
    key = generate_upload_key()
    reference = face_photo("obama_2012_portrait.jpg")
    with sessions.begin() as session:
        store_photo_records(
            session,
            key,
            {PEOPLE[k].id_number: (PEOPLE[k].township, reference) for k in ("b1970", "b1968")},
            at_cst(2026, 5, 1),
        )
    port = free_port()
    app = create_admin_app(sessions, clock=clock, upload_keys=lambda: {1: key})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
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
    cup, other_man = FACES / "no_face_coffee.jpg", FACES / "biden_2010_blue_room.jpg"
    person, second = PEOPLE["b1970"], PEOPLE["b1968"]

    phone = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(f"{base}/self-service/confirm")
    assert page.locator("h1").inner_text() == "优抚对象年度确认（自助）"
    assert page.locator("#selfie").get_attribute("capture") == "user"
    # A typo in the number first: named on the page, nothing confirmed.
    page.fill("#id_number", person.id_number[:-1] + ("1" if person.id_number[-1] != "1" else "2"))
    page.fill("#phone", "13900001111")
    page.set_input_files("#selfie", str(other_man))
    page.click("button[type=submit]")
    assert page.get_by_test_id("error").get_attribute("data-field") == "id_number"
    # A cup instead of a face: told plainly to take the photo again, nothing about the person.
    page.fill("#id_number", person.id_number)
    page.set_input_files("#selfie", str(cup))
    page.click("button[type=submit]")
    error = page.get_by_test_id("error")
    assert error.get_attribute("data-field") == "selfie" and "重新拍一张" in error.inner_text()
    screenshot(page, "confirmation-self-service-retake")
    assert person.name not in page.content()
    page.set_input_files("#selfie", str(other_man))
    page.click("button[type=submit]")
    assert "人脸核验完成后确认生效" in page.get_by_test_id("received").inner_text()
    screenshot(page, "confirmation-self-service-received")
    assert person.name not in page.content()
    received = page.get_by_test_id("received").inner_text()
    # The man himself, for the second record: the same words, and he is confirmed.
    page.goto(f"{base}/self-service/confirm")
    page.fill("#id_number", second.id_number)
    page.fill("#phone", "13900002222")
    page.set_input_files("#selfie", str(FACES / "obama_2009_congress.jpg"))
    page.click("button[type=submit]")
    assert page.get_by_test_id("received").inner_text() == received
    phone.close()

    # The comparison runs once the answer has gone (the same time on the roll or off it).
    for _ in range(300):
        with sessions() as session:
            waiting = session.scalars(
                select(SelfServiceAttempt).where(SelfServiceAttempt.outcome == "pending_face")
            ).all()
        if not waiting:
            break
        time.sleep(0.1)
    with sessions() as session:
        attempt = session.scalars(
            select(SelfServiceAttempt).where(SelfServiceAttempt.outcome == "manual_check")
        ).one()
        assert attempt.selfie == other_man.read_bytes() and attempt.face_score is not None
        matched = session.scalars(
            select(ConfirmationSubject).where(ConfirmationSubject.id_number == second.id_number)
        ).one()
        assert (matched.status, matched.channel, matched.face_result) == (
            "confirmed",
            "self_service",
            "match",
        )

    admin = chromium.new_page()
    login(admin, base, "guanyun", PASSWORD)
    admin.goto(f"{base}/confirmation/self-service?year=2026&county={COUNTY}")
    row = admin.locator(f"tr[data-attempt='{attempt.id}']")
    assert person.id_number in row.inner_text()
    # The selfie (426 px wide) beside the photo on file (480 px), and the check's distance.
    widths = row.locator("img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [426, 480]
    face = row.get_by_test_id("face").inner_text()
    assert f"{attempt.face_score:.3f}" in face and "不是同一人" in face
    screenshot(admin, "confirmation-manual-check")
    row.locator("input[name=reason]").fill("与档案照片不是同一人，电话回访未接通")
    row.locator("button[value=refuse]").click()
    admin.wait_for_url("**/confirmation/self-service?**")
    assert admin.locator(f"tr[data-attempt='{attempt.id}']").count() == 0
    with sessions() as session:
        subject = session.scalars(
            select(ConfirmationSubject).where(ConfirmationSubject.id_number == person.id_number)
        ).one()
        assert subject.status == "to_confirm"

    admin.goto(f"{base}/confirmation?year=2026&county={COUNTY}&lang=en")
    total_young = admin.locator(f"#progress tr[data-region='{COUNTY}'][data-band='<70']")
    cells = total_young.locator("td").all_inner_texts()
    assert cells[2] == "9" and cells[3] == "1"  # nine under 70 in the county, one confirmed
    assert cells[-2] == "1"  # by self-service
    assert admin.get_by_test_id("behind-warning").is_visible()
    screenshot(admin, "confirmation-progress")
