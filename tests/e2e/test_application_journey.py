"""Leaving the army, one application, tried as a new user would in a real Chromium: the
applicant applies on the page, the ten items reach ten simulated departments (one failing three
times first), each answers, one asks for a missing material which the applicant uploads on the
status page, everything ends done, and the applicant sees where and when to come."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from controller.applications.public_app import create_public_app
from controller.applications.sender import DeliverySender
from controller.db import make_engine, migrate, session_factory
from muster.clock import SystemClock
from muster.department_sim import DepartmentScript, SimulatedDepartment
from muster.one_application import FIELDS, ITEMS, materials_for
from tests.fixtures.applications import APPLICANT, PDF, serve, ten_departments
from tests.fixtures.browser import screenshot

pytestmark = [pytest.mark.postgres, pytest.mark.chromium, pytest.mark.slow]

JPEG = b"\xff\xd8\xff\xe0 a clearer photo"


class _World:
    """The public app, ten simulated departments and the delivery sender, in a loop of their
    own on a thread (Playwright's sync API owns the test's thread)."""

    def __init__(self, postgres_url: str) -> None:
        migrate(postgres_url)
        self.engine = make_engine(postgres_url)
        self.sessions = session_factory(self.engine)
        self.clock = SystemClock()
        self.url = ""
        self.sims: dict[str, SimulatedDepartment] = {}
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        place = "环翠区退役军人服务中心"
        scripts = {
            kind: DepartmentScript(
                appointment_at="2027-06-12T09:00:00+08:00",
                place=place,
                bring=("discharge_certificate",),
                fail_first=3 if kind == "hukou" else 0,
            )
            for kind in ITEMS
        }
        scripts["idcard"] = DepartmentScript(
            outcome="more_materials",
            wanted=("photo",),
            appointment_at="2027-06-13T14:30:00+08:00",
            place="环翠派出所",
            bring=("photo",),
        )
        async with (
            serve(create_public_app(self.sessions, self.clock)) as url,
            ten_departments(self.sessions, self.clock, url, scripts) as departments,
        ):
            self.url, self.sims = url, departments.sims
            sender = DeliverySender(self.sessions, self.clock, idle_s=0.1, backoff_initial_s=0.2)
            task = asyncio.create_task(sender.run())
            self._ready.set()
            await self._stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await sender.aclose()

    def __enter__(self) -> _World:
        self._thread.start()
        assert self._ready.wait(60), "the world did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        self.engine.dispose()


@pytest.fixture
def world(postgres_url: str) -> Iterator[_World]:
    with _World(postgres_url) as w:
        yield w


def _states(page: Page) -> dict[str, str]:
    return {
        code: page.get_by_test_id(f"state-{code}").get_attribute("data-state") or ""
        for code in ITEMS
    }


def _wait_for(page: Page, predicate, what: str, rounds: int = 240) -> dict[str, str]:  # type: ignore[no-untyped-def]
    for _ in range(rounds):
        states = _states(page)
        if predicate(states):
            return states
        page.wait_for_timeout(250)
        page.reload()
    raise AssertionError(f"{what}: {_states(page)}")


def test_an_applicant_applies_once_and_every_item_ends_done(
    world: _World, chromium: Browser, tmp_path: Path
) -> None:
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(PDF)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(JPEG)
    page = chromium.new_page(viewport={"width": 390, "height": 844})  # a phone
    page.goto(f"{world.url}/apply")
    page.get_by_test_id("start").click()
    for code in ITEMS:
        page.get_by_test_id(f"item-{code}").check()
    page.get_by_test_id("choose").click()
    for key, value in APPLICANT.items():
        field = page.get_by_test_id(f"field-{key}")
        if FIELDS[key].kind == "choice":
            field.select_option(value)
        else:
            field.fill(value)
    page.get_by_test_id("save").click()
    assert "草稿已保存" in page.get_by_test_id("notice").inner_text()
    # a wrong bank account is named, with what to do
    page.get_by_test_id("field-bank_account").fill("6217001234")
    page.get_by_test_id("save").click()
    assert "16 至 19 位数字" in page.get_by_test_id("problem-bank_account").inner_text()
    page.get_by_test_id("field-bank_account").fill(APPLICANT["bank_account"])
    page.get_by_test_id("save").click()
    for key in materials_for(ITEMS, APPLICANT["service_type"]):
        page.get_by_test_id(f"file-{key}").set_input_files(str(photo if key == "photo" else scan))
        page.get_by_test_id(f"upload-{key}").click()
        assert page.get_by_test_id(f"material-state-{key}").inner_text() == "已上传"
    screenshot(page, "application-form")
    page.get_by_test_id("submit").click()
    assert "申请已提交" in page.get_by_test_id("notice").inner_text()

    _wait_for(
        page,
        lambda s: (
            s["idcard"] == "more_materials"
            and all(v == "done" for k, v in s.items() if k != "idcard")
        ),
        "the departments did not answer",
    )
    assert "请补充：证件照" in page.get_by_test_id("plain-idcard").inner_text()
    page.get_by_test_id("file-photo").set_input_files(str(photo))
    page.get_by_test_id("upload-photo").click()
    _wait_for(page, lambda s: all(v == "done" for v in s.values()), "not everything ended done")
    screenshot(page, "application-done")
    assert (
        "请于 6 月 13 日 14:30 到环翠派出所办理，携带：证件照"
        in page.get_by_test_id("plain-idcard").inner_text()
    )
    assert (
        "请于 6 月 12 日 9:00 到环翠区退役军人服务中心办理"
        in page.get_by_test_id("plain-hukou").inner_text()
    )
    assert world.sims["hukou"].answered == 4  # three 500s before it took the delivery
    assert world.sims["idcard"].stats()["unique_deliveries"] == 2
    page.goto(f"{world.url}/apply/status?lang=en")
    assert "Please come to" in page.get_by_test_id("plain-idcard").inner_text()
