"""The weekly report counts, per region, the tasks from the centre sent, done (closed by a new
record or answered "the department is wrong") and done this week, on the page, over the API and
in the XLSX; another county's tasks never show."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import httpx
from openpyxl import load_workbook
from sqlalchemy.orm import Session, sessionmaker

from controller.admin import create_admin_app
from controller.db.models import CentreTask, ComparisonRun, DepartmentExtract
from controller.records.progress import weekly_report
from muster.clock import VirtualClock
from tests.unit.admin_world import HOME, NEIGHBOUR, NOW, TOWNSHIP, bearer, build_world


def add_tasks(sessions: sessionmaker[Session]) -> None:
    """Home's township: one waiting, one closed this week, one disputed the week before;
    the neighbour: one closed this week."""
    with sessions.begin() as s:
        s.add(
            DepartmentExtract(
                extract_id="e1",
                department="civil_affairs",
                region_prefix="37",
                file_name="x.csv",
                rows=4,
                rejected=0,
                imported_by="t",
                imported_at=NOW,
            )
        )
        s.flush()
        run = ComparisonRun(
            department="civil_affairs",
            extract_id="e1",
            collected_source="centre",
            engine="duckdb",
            run_by="t",
            run_at=NOW - timedelta(days=10),
            department_rows=4,
            collected_rows=4,
            linked_exact=4,
            linked_probabilistic=0,
            problems=4,
            missing=0,
            deaths=0,
        )
        s.add(run)
        s.flush()
        for n, (township, status, closed_at) in enumerate(
            (
                (TOWNSHIP[HOME], "sent", None),
                (TOWNSHIP[HOME], "closed", NOW - timedelta(hours=1)),
                (TOWNSHIP[HOME], "disputed", NOW - timedelta(days=8)),
                (TOWNSHIP[NEIGHBOUR], "closed", NOW - timedelta(hours=1)),
            )
        ):
            s.add(
                CentreTask(
                    run_id=run.id,
                    kind="problem",
                    township_code=township,
                    id_number=f"37090219600101{n:04d}",
                    name="张三",
                    department="civil_affairs",
                    details={},
                    status=status,
                    created_by="t",
                    created_at=NOW - timedelta(days=10),
                    closed_at=closed_at,
                )
            )


def test_task_closure_per_region_in_the_weekly_report(sessions: sessionmaker[Session]) -> None:
    world = build_world(sessions)
    add_tasks(sessions)
    with sessions() as s:
        week = weekly_report(s, HOME, NOW.date(), NOW)
        nation = weekly_report(s, "", NOW.date(), NOW)
    (row,) = [r for r in week.rows if r.code == TOWNSHIP[HOME][:9]]
    assert (row.tasks, row.tasks_done, row.tasks_done_week, row.task_percent) == (3, 2, 1, 66.7)
    assert (week.total.tasks, week.total.tasks_done, week.total.tasks_done_week) == (3, 2, 1)
    assert (nation.total.tasks, nation.total.tasks_done, nation.total.tasks_done_week) == (4, 3, 2)
    # A week with no tasks done still counts what was sent, and a region without tasks shows 0.
    with sessions() as s:
        later = weekly_report(s, HOME, (NOW + timedelta(days=14)).date(), NOW)
    assert (later.total.tasks, later.total.tasks_done_week) == (3, 0)

    app = create_admin_app(sessions, clock=VirtualClock(NOW))
    headers = bearer(world.tokens["county"])

    async def get(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.get(path, headers=headers)

    api = asyncio.run(get("/api/v1/reports/weekly")).json()
    assert [r["tasks"] for r in api["rows"]] == [
        {"sent": 3, "done": 2, "done_this_week": 1, "percent": 66.7}
    ]
    page = asyncio.run(get("/reports/weekly"))
    assert page.status_code == 200
    assert "本周办结任务" in page.text and "任务办结率" in page.text
    assert 'data-testid="tasks-done">2/3<' in page.text and "66.7%" in page.text
    english = asyncio.run(get("/reports/weekly?lang=en")).text
    assert "Tasks done this week" in english
    sheet = load_workbook(io.BytesIO(asyncio.run(get("/reports/weekly.xlsx")).content))["周报"]
    values = [[c.value for c in r] for r in sheet.iter_rows(min_row=2)]
    header = values[0]
    at = header.index("下发任务")
    assert header[at : at + 4] == ["下发任务", "已办结任务", "本周办结任务", "任务办结率%"]
    assert values[1][at : at + 4] == [3, 2, 1, 66.7]
    assert values[-1][1] == "合计" and values[-1][at : at + 4] == [3, 2, 1, 66.7]
    # Hostile: another county's report is refused, a malformed week is named, nothing leaks.
    refused = asyncio.run(get(f"/api/v1/reports/weekly?region={NEIGHBOUR}"))
    assert refused.status_code == 403
    bad = asyncio.run(get("/api/v1/reports/weekly?week=2026-13-45"))
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
