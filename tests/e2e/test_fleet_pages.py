"""The central admin's fleet pages in a real Chromium, tried the way a new admin would: a real
controller process, real Mosquitto, a simulated fleet spread over China's townships; find the
region, find the offline devices, open one, send commands and see the device's ack."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from edge.simulators.fleet import FleetShape, FleetSimulator
from muster.clock import SystemClock
from muster.fleet_layout import simulated_fleet
from muster.region_names import region_name
from tests.fixtures.admin_login import login
from tests.fixtures.browser import screenshot
from tests.fixtures.fleet import MUSTER, ControllerProcess, Fleet, wait_until
from tests.fixtures.mosquitto import MosquittoBroker

DEVICES = 600


@pytest.fixture
def simulated(
    fleet: Fleet, mosquitto: MosquittoBroker
) -> Iterator[tuple[ControllerProcess, FleetSimulator]]:
    """A controller with DEVICES simulated devices registered and reporting every 3 s."""
    controller = fleet.controller(mqtt_url=mosquitto.url, extra_args=("--log-level", "WARNING"))
    subprocess.run(
        [
            *MUSTER,
            "controller",
            "register-simulated",
            "--devices",
            str(DEVICES),
            "--data-dir",
            str(controller.data_dir),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    sim = FleetSimulator(
        mosquitto.url,
        DEVICES,
        connections=2,
        shape=FleetShape(offline_share=0.05, hang_share=0, interval_s=3.0),
        clock=SystemClock(),
    )
    sim.connect()
    sim.announce()
    stop = threading.Event()
    thread = threading.Thread(target=sim.run, args=(None,), kwargs={"stop": stop}, daemon=True)
    thread.start()
    yield controller, sim
    stop.set()
    thread.join(10)
    sim.close()


def shot(page: Page, name: str) -> None:
    screenshot(page, f"fleet-{name}")


def test_admin_finds_an_offline_device_and_commands_an_online_one(
    simulated: tuple[ControllerProcess, FleetSimulator], chromium: Browser
) -> None:
    """From the overview by region down to a township's devices; from the offline count to an
    offline device whose command waits; then a reporting device that acks a command on its page.
    The pages are in Chinese, and in English with ?lang=en."""
    controller, sim = simulated
    offline_ids = {d.sim.device_id for d in sim.devices.values() if d.mode == "offline"}
    wait_until(
        lambda: controller.summary()["online"] >= DEVICES - len(offline_ids),
        60,
        "the simulated fleet online",
    )
    page = chromium.new_page()
    controller.add_admin("ops-ui", "ministry", "", "Ops-passw0rd")
    login(page, controller.admin_url, "ops-ui", "Ops-passw0rd")
    page.goto(controller.admin_url + "/")
    expect(page.locator("h1")).to_have_text("按地区查看设备")
    expect(page.get_by_test_id("count-devices")).to_contain_text(str(DEVICES))
    expect(page.get_by_test_id("count-offline")).to_contain_text(str(len(offline_ids)))
    shot(page, "overview")

    # Drill down: province → city → county → township → its devices.
    target = simulated_fleet(1, first=2)[0]
    province = target.township_code[:2]
    page.locator(f"tr[data-region='{province}'] a").first.click()
    expect(page.get_by_test_id("crumbs")).to_contain_text(region_name(province))
    page.locator(f"tr[data-region='{target.township_code[:4]}'] a").first.click()
    page.locator(f"tr[data-region='{target.township_code[:6]}'] a").first.click()
    expect(page.get_by_test_id("crumbs")).to_contain_text(region_name(target.township_code[:6]))
    shot(page, "county")
    page.locator(f"tr[data-region='{target.township_code[:9]}'] a").first.click()
    expect(page.locator(f"tr[data-device='{target.device_id}']")).to_be_visible()

    # The offline ones: from the overview's link, open one and queue a command for it.
    page.goto(controller.admin_url + "/")
    page.get_by_test_id("show-offline").click()
    expect(page.get_by_test_id("found")).to_contain_text(str(len(offline_ids)))
    first_offline = page.locator("table#devices tbody tr").first
    offline_id = first_offline.get_attribute("data-device")
    assert offline_id in offline_ids
    shot(page, "offline-list")
    first_offline.locator("a").click()
    expect(page.get_by_test_id("state")).to_contain_text("离线")
    page.select_option("select[name=kind]", "upload-logs")
    page.get_by_role("button", name="发送").click()
    # Handed to the broker, which holds it for the device; the page refreshes while it waits.
    waiting = page.locator("table#commands tbody tr").first
    expect(waiting).to_have_attribute("data-state", "sent", timeout=20_000)
    expect(waiting.locator(".cmd-state")).to_have_text("已发送")

    # A reporting device: search it by id, command it, watch the ack arrive (the page refreshes).
    online_id = next(d for d in sim.devices if d not in offline_ids)
    page.goto(controller.admin_url + "/devices")
    page.fill("input[name=q]", online_id)
    page.get_by_role("button", name="查询").click()
    page.locator(f"tr[data-device='{online_id}'] a").click()
    expect(page.get_by_test_id("state")).to_contain_text("在线")
    page.select_option("select[name=kind]", "set-log-level")
    page.fill("textarea[name=arguments]", "level=DEBUG")
    page.get_by_role("button", name="发送").click()
    row = page.locator("table#commands tbody tr").first
    expect(row.locator(".cmd-state")).to_have_text("已确认", timeout=30_000)
    expect(row).to_contain_text("已执行")
    shot(page, "device-acked")

    # A bad argument is refused on the page, saying what is wrong.
    page.select_option("select[name=kind]", "set-log-level")
    page.fill("textarea[name=arguments]", "level=LOUD")
    page.get_by_role("button", name="发送").click()
    expect(page.get_by_test_id("error")).to_contain_text("level")

    # English, and the charts and alerts pages.
    page.goto(f"{controller.admin_url}/devices/{online_id}?lang=en")
    expect(page.locator("h2").first).to_have_text("Alerts")
    page.goto(controller.admin_url + "/flow")
    expect(page.get_by_test_id("records-per-hour")).to_be_visible()
    page.goto(controller.admin_url + "/alerts")
    wait_until(
        lambda: page.reload() is not None and page.locator("tr[data-alert='offline']").count() > 0,
        60,
        "offline alerts on the alerts page",
        interval=2,
    )
    shot(page, "alerts")
