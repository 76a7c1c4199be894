"""The admin's enrolment-code page in a real Chromium: create a code for a township, see it as
text and as a QR code, and follow its status in the list once a device has used it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import add_admin
from controller.admin import create_admin_app
from controller.db import make_engine, migrate, session_factory
from controller.devices.enrolment import Enroller, publish_upload_keys
from controller.devices.pki_store import ControllerPki, ensure_controller_pki
from muster.clock import SystemClock
from tests.fixtures.admin_login import login
from tests.fixtures.components import free_port, wait_for_port
from tests.unit.test_enrollment import request

PASSWORD = "Ops-passw0rd"


@pytest.fixture
def admin(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session], ControllerPki]]:
    clock = SystemClock()
    now = clock.now()
    pki = ensure_controller_pki(tmp_path / "ctl", ["127.0.0.1"], now=now)
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        publish_upload_keys(session, pki, now)
        add_admin(session, username="ops", role="ministry", region="", password=PASSWORD, now=now)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_admin_app(sessions, clock=clock), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port("127.0.0.1", port, 20, what="admin server")
    yield f"http://127.0.0.1:{port}", sessions, pki
    server.should_exit = True
    thread.join(10)
    engine.dispose()


def test_admin_creates_a_code_shown_as_text_and_qr_and_sees_it_used(
    admin: tuple[str, sessionmaker[Session], ControllerPki], chromium: Browser
) -> None:
    """The form makes a single-use code for the chosen township and profile; the page shows it
    once with an inline QR code, lists it as unused, and after a device enrols with it, as used
    by that device. A bad township is refused on the page with a message, creating nothing."""
    base, sessions, pki = admin
    page = chromium.new_page()
    login(page, base, "ops", PASSWORD)
    page.goto(f"{base}/codes")
    assert page.locator("h1").inner_text() == "设备注册码"

    page.fill("input[name=township]", "370902001000")
    page.select_option("select[name=profile]", "portable-tablet")
    page.select_option("select[name=valid_hours]", "24")
    page.click("button[type=submit]")
    code = page.get_by_test_id("code-text").inner_text().strip()
    assert len(code) == 19 and code.count("-") == 3
    assert page.get_by_test_id("code-qr").locator("svg").count() == 1
    row = page.locator("#codes tbody tr").first
    assert row.get_attribute("data-status") == "unused"
    assert "portable-tablet" in row.inner_text() and "370902001000" in row.inner_text()

    device_id = (
        Enroller(
            sessions,
            pki,
            licence_days=30,
            mqtt_url="mqtt://x:1",
            data_endpoint="x:2",
            clock=SystemClock(),
        )
        .enroll(request(code))
        .device_id
    )
    page.goto(f"{base}/codes?lang=en")
    row = page.locator("#codes tbody tr").first
    assert row.get_attribute("data-status") == "used"
    assert device_id in row.inner_text() and "used" in row.inner_text()
    assert page.get_by_test_id("new-code").count() == 0  # the code itself is never shown again

    # The form's own post with a bad township, sent as the page would (its CSRF token, this
    # site as Origin), past the browser's own checks of the field.
    token = page.locator("[data-testid=code-form] input[name=csrf_token]").get_attribute("value")
    response = page.request.post(
        f"{base}/codes",
        form={
            "township": "3709",
            "profile": "fixed-kiosk",
            "valid_hours": "24",
            "lang": "zh",
            "csrf_token": token or "",
        },
        headers={"Origin": base},
    )
    assert response.status == 400 and "12位" in response.text()
    page.goto(f"{base}/codes")
    assert page.locator("#codes tbody tr").count() == 1
