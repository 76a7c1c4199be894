"""The annual confirmation's home visit in a real Chromium (S-21): a real controller with a
campaign, its payment roll, the visit plan and the face templates made from the reference
photos of the records campaign; a portable edge device whose slice brings the visit list; the
SAM reader simulator with the visitor's card; a video file as the camera, showing the man of
the first reference photo turning his head. The clerk reads the card, takes the live photos,
sees the face match with the liveness passed, and seals; for the second person (whose photo on
file is another man) the check fails and the clerk confirms by a manual check with the reason.
The centre is down from the moment the visit list is on the device: everything runs offline,
and once the centre is back the sealed confirmations reach it and confirm both people once,
with channel, device, clerk and face result. Screenshots: artifacts/screenshots/confirmation-*.png."""

from __future__ import annotations

import csv
import math
import subprocess
from pathlib import Path

import cv2
import numpy as np
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from controller.db.models import ConfirmationEvent, ConfirmationSubject
from controller.devices.pki_store import load_upload_keys
from edge.simulators.idcard import IdCardSimulator, SimCard, running, synthetic_cards
from muster.clock import SystemClock
from muster.face import decode_image
from tests.e2e.test_console import add_clerk, console_device, import_people, login
from tests.fixtures.browser import screenshot
from tests.fixtures.face_records import face_photo, store_photo_records
from tests.fixtures.fleet import MUSTER, ControllerProcess, Fleet, wait_until
from tests.fixtures.mosquitto import MosquittoBroker
from tests.unit.test_face import _nose_moved

TOWNSHIP = "370902001000"
COUNTY = TOWNSHIP[:6]
YEAR = "2026"  # the campaign's year; ages and bands are counted on its dates, whatever today is


def shot(page: Page, name: str) -> None:
    screenshot(page, f"confirmation-{name}")


def turning_head_video(path: Path, photo: str, fps: int = 10, seconds: int = 6) -> None:
    """A camera's view of the person in ``photo`` turning the head slowly to and fro."""
    face = decode_image(face_photo(photo), what="camera scene")
    width, height = 640, 480
    scale = min(width / face.shape[1], height / face.shape[0]) * 0.9
    face = np.asarray(
        cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), dtype=np.uint8
    )
    period = 13  # 1.3 s: not a multiple of the console's pace between frames
    cycle = [_nose_moved(face, 0.6 * math.sin(2 * math.pi * k / period)) for k in range(period)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    top, left = (height - face.shape[0]) // 2, (width - face.shape[1]) // 2
    for index in range(fps * seconds):
        canvas = np.full((height, width, 3), 235, dtype=np.uint8)
        canvas[top : top + face.shape[0], left : left + face.shape[1]] = cycle[index % period]
        writer.write(canvas)
    writer.release()


def cli(controller: ControllerProcess, *args: str) -> str:
    done = subprocess.run(
        [*MUSTER, "controller", "confirmation", *args, *controller._db_args()],
        check=True,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return done.stdout


def open_campaign(controller: ControllerProcess, cards: list[SimCard], tmp_path: Path) -> None:
    """The county's campaign, its roll, the visit plan; reference photos on file for the first
    two people (the first one's is the man the camera shows), and the face templates."""
    common = ["--year", YEAR, "--county", COUNTY]
    cli(controller, "campaign", "create", *common)
    roll = tmp_path / "roll.csv"
    with roll.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["公民身份号码", "优抚对象类别", "月发放金额（元）", "联系电话"])
        for card in cards:
            writer.writerow([card.text.id_number, "残疾军人", "1500.00", "13812345678"])
    cli(controller, "roll", "import", *common, "--file", str(roll))
    cli(controller, "plan-visits", *common)
    keys = load_upload_keys(controller.data_dir / "pki")
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    try:
        with Session(engine) as session, session.begin():
            store_photo_records(
                session,
                keys[max(keys)],
                {
                    cards[0].text.id_number: (TOWNSHIP, face_photo("obama_2012_portrait.jpg")),
                    cards[1].text.id_number: (TOWNSHIP, face_photo("biden_2010_blue_room.jpg")),
                },
                SystemClock().now(),
            )
    finally:
        engine.dispose()
    out = cli(controller, "face-templates", *common)
    assert '"described": 2' in out, out


def subjects(controller: ControllerProcess) -> dict[str, tuple[ConfirmationSubject, int]]:
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    try:
        with Session(engine) as session:
            found = {}
            for subject in session.scalars(select(ConfirmationSubject)):
                events = session.scalars(
                    select(ConfirmationEvent).where(
                        ConfirmationEvent.id_number == subject.id_number,
                        ConfirmationEvent.kind == "confirm",
                    )
                ).all()
                session.expunge(subject)
                found[subject.id_number] = (subject, len(events))
            return found
    finally:
        engine.dispose()


def test_a_home_visit_confirms_by_face_and_by_manual_check_in_chromium(
    fleet: Fleet, mosquitto: MosquittoBroker, chromium: Browser, tmp_path: Path
) -> None:
    cards = synthetic_cards(COUNTY, 3, seed=23)
    controller = fleet.controller(mqtt_url=mosquitto.url)
    add_clerk(controller, "li.li", "李丽")
    import_people(controller, cards, tmp_path / "people.csv")
    open_campaign(controller, cards, tmp_path)
    video = tmp_path / "camera.avi"
    turning_head_video(video, "obama_2009_congress.jpg")
    reader = IdCardSimulator(card=None, clock=SystemClock())
    with running(reader) as sim:
        edge, url = console_device(
            fleet,
            controller,
            tmp_path,
            sim.url,
            video,
            kind="portable",
            console_extra=", home_visit: true",
        )
        context = chromium.new_context(viewport={"width": 1024, "height": 900}, locale="zh-CN")
        page = login(context, url, "li.li")
        page.get_by_role("link", name="年度认证").click()

        def listed() -> bool:
            page.goto(url + "confirmation")
            return page.locator("#visit-list tr[data-id]").count() == 3

        wait_until(listed, 90, "the visit list in the console", interval=1.0)
        page.locator("select[name=channel]").select_option("home_visit")
        page.get_by_role("button", name="筛选").click()
        expect(page.locator("#visit-list tr[data-id]")).to_have_count(3)
        shot(page, "list")

        # The visit list is on the device: from here the device is offline (the centre is
        # down), and every step below runs without it.
        controller.stop()

        def offline() -> bool:
            page.goto(url + "confirmation")
            return "离线" in page.locator("#net").inner_text()

        wait_until(offline, 60, "the console showing the device offline", interval=1.0)

        # The first visit: card, live photos, the face matches and the head turned; sealed.
        first = cards[0].text
        page.locator(f"tr[data-id='{first.id_number}']").get_by_role("link", name="认证").click()
        expect(page.get_by_role("heading", name=f"年度认证：{first.name}")).to_be_visible()
        reader.insert(cards[0])
        page.get_by_role("button", name="读取身份证").click()
        expect(page.locator("#message")).to_contain_text("已读取身份证，号码一致")
        reader.remove()
        page.get_by_role("button", name="拍照比对").click(timeout=120_000)
        # As a clerk would: when the frames happened to catch no movement, take them again.
        for _retake in range(3):
            expect(page.locator("#face-result")).to_contain_text("人脸比对通过", timeout=60_000)
            if "活体检测通过" in page.locator("#face-result").inner_text():
                break
            page.get_by_role("button", name="重新拍照比对").click(timeout=120_000)
        expect(page.locator("#face-result")).to_contain_text("活体检测通过（看到转头）")
        page.get_by_role("checkbox", name="姓名").check()
        page.get_by_role("checkbox", name="联系电话").check()
        page.locator("input[name=phone]").fill("13812345678")
        page.locator("textarea[name=living_situation]").fill("与儿子同住，身体尚可")
        shot(page, "face-match")
        page.get_by_role("button", name="确认并封存").click()
        expect(page.locator("#sealed")).to_contain_text("认证记录已封存")
        expect(page.locator(f"tr[data-id='{first.id_number}'] .status")).to_have_text(
            "本机已确认（待上传）"
        )

        # The second: the photo on file is another man's; the clerk checks the card by hand.
        second = cards[1].text
        page.locator(f"tr[data-id='{second.id_number}']").get_by_role("link", name="认证").click()
        reader.insert(cards[1])
        page.get_by_role("button", name="读取身份证").click()
        expect(page.locator("#message")).to_contain_text("已读取身份证，号码一致")
        reader.remove()
        page.get_by_role("button", name="拍照比对").click(timeout=120_000)
        expect(page.locator("#face-result")).to_contain_text("人脸比对未通过", timeout=60_000)
        page.get_by_role("button", name="确认并封存").click()
        expect(page.locator("#error")).to_contain_text("写明理由")
        page.locator("#manual-reason").fill("人脸比对未通过，已核对身份证原件与本人")
        shot(page, "manual-check")
        page.get_by_role("button", name="确认并封存").click()
        expect(page.locator("#sealed")).to_be_visible()
        shot(page, "sealed")
        assert len(edge.sealed_ids()) == 2  # both wait in the outbox while the centre is down
        assert subjects(controller)[first.id_number][0].status == "to_confirm"
        controller.start()

        def confirmed() -> bool:
            found = subjects(controller)
            return all(found[c.text.id_number][0].status == "confirmed" for c in cards[:2])

        wait_until(confirmed, 90, "both confirmations at the centre", interval=1.0)
        found = subjects(controller)
        by_face, count = found[first.id_number]
        assert count == 1 and by_face.channel == "home_visit" and by_face.face_result == "match"
        assert by_face.confirmed_by == "li.li" and by_face.confirmed_device == edge.device_id
        by_hand, count = found[second.id_number]
        assert count == 1 and by_hand.face_result == "manual"
        assert found[cards[2].text.id_number][0].status == "to_confirm"
        context.close()
