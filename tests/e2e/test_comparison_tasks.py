"""A department's extract against the collected records, end to end in a real Chromium (issue 17,
S-10, S-23): a real controller on PostgreSQL, Mosquitto, an edge daemon with its console, the SAM
reader simulator and a video file as the camera. Clerk A collects a person, clerk B checks and
seals; the record reaches the centre. The household department's extract gives the person
another address: imported and compared with the commands an operator types, the problem is in
problems.csv and comparison.xlsx with its field, our value and theirs. The county admin sends
the run's findings as tasks from /tasks; the device's next Health brings the task to the
clerks' home with what disagreed and which department said so; the clerk corrects the address,
the second clerk checks, the person signs, the record is sealed and uploaded, and /tasks shows
the task closed by the new record. Screenshots land in artifacts/screenshots/comparison-*.png.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect

from edge.simulators.idcard import IdCardSimulator, running, synthetic_cards
from muster.clock import SystemClock
from muster.departments import DEPARTMENTS
from tests.e2e.test_console import (
    TOWNSHIP,
    add_clerk,
    console_device,
    fill_category_fields,
    import_people,
    login,
)
from tests.e2e.test_console_tasks import reload_until, review_sign_seal, take_photo
from tests.fixtures.admin_login import login as admin_login
from tests.fixtures.browser import screenshot
from tests.fixtures.fleet import MUSTER, ControllerProcess, Fleet
from tests.fixtures.mosquitto import MosquittoBroker

COUNTY_PASSWORD = "County-passw0rd"
OUR_ADDRESS = "泰安市泰山区上高街道东关路12号"  # what fill_category_fields enters
THEIR_ADDRESS = "泰安市泰山区上高街道西关路88号"
HOUSEHOLD = DEPARTMENTS["household"].label
SEX_NAMES = {"1": "男", "2": "女"}


def shot(page: Page, name: str) -> None:
    screenshot(page, f"comparison-{name}")


def cli(controller: ControllerProcess, *args: str) -> str:
    """A controller command as the operator types it; its standard output."""
    done = subprocess.run(
        [*MUSTER, "controller", *args, *controller._db_args()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_comparison_problem_becomes_a_task_corrected_on_the_device(
    postgres_url: str,  # before the fleet: the database outlives the controller using it
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    chromium: Browser,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Collected and sealed; the household extract disagrees on the address; the problem is in
    the CSV and the workbook, sent from /tasks, shown on the console with the department, corrected,
    re-checked, resealed, and closed at the centre by the new record."""
    monkeypatch.setenv("MUSTER_EDGE_HEALTH_EVERY_S", "2")
    cards = synthetic_cards("370902", 3, seed=29)
    person = cards[0]
    name, number = person.text.name, person.text.id_number
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
        search = url + f"?q={number}"
        row = clerk_a.locator("#results tr", has_text=number)
        reload_until(clerk_a, search, row, "the initial data in the console's search")

        # 1. Clerk A collects the person; clerk B checks, the person signs, B seals; uploaded.
        row.get_by_role("button", name="开始采集").click()
        expect(clerk_a.locator("h1")).to_contain_text("信息采集表")
        first_id = clerk_a.url.rsplit("/", 1)[1]
        reader.insert(person)
        clerk_a.get_by_role("button", name="读取身份证").click()
        expect(clerk_a.locator("#message")).to_contain_text("已读取身份证")
        reader.remove()
        take_photo(clerk_a)
        fill_category_fields(clerk_a, "retired_soldier")
        clerk_a.locator("input[name=service_unit]").fill("陆军")
        clerk_a.get_by_role("button", name="提交复核").click()
        expect(clerk_a.locator("#message")).to_contain_text("等待另一名工作人员复核")
        review_sign_seal(clerk_b, url, person)
        reload_until(
            clerk_b,
            search,
            clerk_b.locator("#results tr", has_text=number).locator(".mark", has_text="已上传"),
            "the record acknowledged by the centre",
        )

        # 2. The household department's extract has the person at another address.
        extract = tmp_path / "household.csv"
        with extract.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["姓名", "公民身份号码", "性别", "出生日期", "住址", "乡镇代码", "户号", "户籍状态"]
            )
            writer.writerow(
                [
                    name,
                    number,
                    SEX_NAMES[person.text.sex.value],
                    person.text.birth_date.isoformat(),
                    THEIR_ADDRESS,
                    TOWNSHIP,
                    "370902001000017",
                    "正常",
                ]
            )
        imported = cli(
            controller,
            "extract",
            "import",
            "--department",
            "household",
            "--file",
            str(extract),
            "--region",
            "370902",
        )
        assert json.loads(imported.strip().splitlines()[-1])["accepted"] == 1, imported
        out = tmp_path / "comparison"
        # The county's run (--region): /tasks offers a county admin the runs of their county.
        compared = cli(
            controller,
            "compare",
            "--department",
            "household",
            "--region",
            "370902",
            "--out",
            str(out),
        )
        summary = json.loads(compared.strip().splitlines()[-1])
        assert summary["problems"] == 1 and summary["missing"] == 0, compared
        run_id = summary["run_id"]

        with (out / "problems.csv").open(encoding="utf-8-sig", newline="") as f:
            problems = list(csv.DictReader(f))
        assert [(p["公民身份号码"], p["字段"], p["采集值"], p["部门值"]) for p in problems] == [
            (number, "住址", OUR_ADDRESS, THEIR_ADDRESS)
        ]
        assert problems[0]["部门"] == HOUSEHOLD
        sheet = load_workbook(out / "comparison.xlsx", read_only=True)["问题数据"]
        rows = [list(r) for r in sheet.iter_rows(values_only=True)]
        head = rows[0]
        assert [
            (
                r[head.index("公民身份号码")],
                r[head.index("字段")],
                r[head.index("采集值")],
                r[head.index("部门值")],
            )
            for r in rows[1:]
        ] == [(number, "住址", OUR_ADDRESS, THEIR_ADDRESS)]

        # 3. The county admin sends the run's findings to the townships from /tasks.
        admin = county.new_page()
        admin_login(admin, controller.admin_url, "county", COUNTY_PASSWORD)
        admin.goto(f"{controller.admin_url}/tasks")
        admin.get_by_test_id("run").select_option(str(run_id))
        admin.get_by_test_id("make-tasks").click()
        expect(admin.locator("#made")).to_contain_text("已下发 1 项任务")
        centre_row = admin.locator("#tasks tr", has_text=number)
        expect(centre_row).to_contain_text("待乡镇处理")
        expect(centre_row).to_contain_text(HOUSEHOLD)
        shot(admin, "sent")
        # The same run sent again from the command line makes nothing new.
        again = cli(controller, "compare", "tasks", "--run", str(run_id), "--as", "county")
        assert json.loads(again.strip().splitlines()[-1])["created"] == 0, again

        # 4. The next Health brings it: on the clerks' home, what disagreed and who says so.
        task = clerk_a.locator("#task-list tr[data-task^='centre/T']")
        reload_until(clerk_a, url, task, "the comparison's task in the console's tasks")
        expect(task).to_contain_text("比对问题数据")
        expect(task).to_contain_text(HOUSEHOLD)
        expect(task).to_contain_text(name)
        expect(task.locator(".reason")).to_contain_text(
            f"住址：采集为“{OUR_ADDRESS}”，{HOUSEHOLD}为“{THEIR_ADDRESS}”"
        )
        shot(clerk_a, "task")
        task.get_by_role("button", name="开始更正").click()
        expect(clerk_a.locator("h1")).to_contain_text("信息采集表")
        second_id = clerk_a.url.rsplit("/", 1)[1]
        assert second_id != first_id
        expect(clerk_a.locator("#task-note")).to_contain_text(THEIR_ADDRESS)
        expect(clerk_a.locator("input[name=id_number]")).to_have_value(number)
        fill_category_fields(clerk_a, "retired_soldier")
        clerk_a.locator("input[name=service_unit]").fill("陆军")
        clerk_a.locator("input[name=address]").fill(THEIR_ADDRESS)
        take_photo(clerk_a)
        clerk_a.get_by_role("button", name="提交复核").click()
        expect(clerk_a.locator("#message")).to_contain_text("等待另一名工作人员复核")
        clerk_a.goto(url)
        expect(task).to_contain_text("继续处理")
        review_sign_seal(clerk_b, url, person)
        reload_until(
            clerk_a,
            url,
            clerk_a.locator("#tasks", has_text="目前没有需要处理的任务"),
            "the comparison's task closed by the corrected record",
        )
        shot(clerk_a, "task-closed")
        entry.close()
        reviewer.close()

    # 5. At the centre the task is closed and names the corrected record.
    reload_until(
        admin,
        f"{controller.admin_url}/tasks",
        admin.locator("#tasks tr", has_text=second_id),
        "the task closed at the centre",
    )
    expect(centre_row).to_contain_text("已关闭")
    expect(admin.locator("#progress")).to_contain_text("100.0 %")
    listed = admin.request.get(f"{controller.admin_url}/api/v1/tasks")
    assert listed.ok, listed.text()
    [closed] = listed.json()["tasks"]
    assert (closed["status"], closed["record_id"], closed["department"]) == (
        "closed",
        second_id,
        "household",
    )
    shot(admin, "closed")
    admin.goto(f"{controller.admin_url}/review/{second_id}")
    expect(admin.locator("tr[data-field=address] td").nth(1)).to_contain_text(THEIR_ADDRESS)
    # Compared again, the corrected record agrees with the department.
    recompared = cli(
        controller,
        "compare",
        "--department",
        "household",
        "--region",
        "370902",
        "--out",
        str(tmp_path / "again"),
    )
    assert json.loads(recompared.strip().splitlines()[-1])["problems"] == 0, recompared
    county.close()
