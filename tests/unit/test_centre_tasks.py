"""Tasks for the townships at the centre (S-10): a run's findings become one task per person,
only inside the admin's area; Health lists a township's own tasks; a dispute from a device is
checked (task id, reason, township, state) and applied once; a new record for the person closes
the task and supersedes a returned record, naming it in the history."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import AccessDenied, AdminIdentity
from controller.db import make_engine, migrate, session_factory
from controller.db.models import CentreTask, ComparisonFinding, ComparisonRun, DepartmentExtract
from controller.records.review import supersede_returned
from controller.records.tasks import (
    answer_tasks,
    close_for_records,
    make_tasks,
    runs_in_view,
    task_messages,
)
from muster.errors import NotFoundError
from muster.v1 import data_pb2
from tests.unit.admin_world import HOME, NEIGHBOUR, NOW, TOWNSHIP, build_world

COUNTY = AdminIdentity("county", "county", HOME)


@pytest.fixture
def world(tmp_path: Path) -> tuple[sessionmaker[Session], object]:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    built = build_world(sessions, people=4, collected=2)
    with sessions.begin() as s:
        extract = {
            "extract_id": "e1",
            "department": "civil_affairs",
            "region_prefix": HOME,
            "file_name": "x.csv",
            "rows": 3,
            "rejected": 0,
            "imported_by": "t",
            "imported_at": NOW,
        }
        s.add(DepartmentExtract(**extract))
        s.flush()
        run = ComparisonRun(
            department="civil_affairs",
            extract_id="e1",
            collected_source="centre",
            engine="duckdb",
            run_by="t",
            run_at=NOW,
            department_rows=3,
            collected_rows=2,
            linked_exact=2,
            linked_probabilistic=0,
            problems=2,
            missing=1,
            deaths=0,
        )
        s.add(run)
        s.flush()
        for kind, township, number, field in (
            ("problem", TOWNSHIP[HOME], "370902196001010011", "出生日期"),
            ("problem", TOWNSHIP[HOME], "370902196001010011", "住址"),
            ("missing", TOWNSHIP[HOME], "370902197001010022", ""),
            ("problem", TOWNSHIP[NEIGHBOUR], "370911196001010033", "姓名"),
            ("problem", "", "370902196001010044", "姓名"),
        ):
            s.add(
                ComparisonFinding(
                    run_id=run.id,
                    kind=kind,
                    township_code=township,
                    id_number=number,
                    name="张三",
                    field=field,
                    collected_value="a",
                    department_value="b",
                    department="civil_affairs",
                    status="open",
                    status_at=NOW,
                )
            )
    return sessions, built


def test_findings_become_tasks_once_inside_the_admins_area(world: tuple) -> None:
    sessions, built = world
    with sessions.begin() as s:
        made = make_tasks(s, 1, COUNTY, NOW)
    assert (made.created, made.findings, made.without_township) == (2, 3, 1)
    with sessions.begin() as s:
        assert make_tasks(s, 1, COUNTY, NOW).created == 0, "sent findings are not sent again"
        with pytest.raises(AccessDenied):
            make_tasks(s, 1, COUNTY, NOW, township=TOWNSHIP[NEIGHBOUR])
        with pytest.raises(NotFoundError):
            make_tasks(s, 99, COUNTY, NOW)
        with pytest.raises(AccessDenied):
            make_tasks(s, 1, AdminIdentity("a", "auditor", HOME), NOW)
    device = built.counties[HOME].device_id  # type: ignore[attr-defined]
    neighbour = built.counties[NEIGHBOUR].device_id  # type: ignore[attr-defined]
    with sessions() as s:
        mine = task_messages(s, device)
        assert sorted(t.kind for t in mine) == ["missing", "problem"]
        problem = next(t for t in mine if t.kind == "problem")
        assert [d.field for d in problem.differences] == ["出生日期", "住址"]
        assert problem.department_label
        assert task_messages(s, neighbour) == [], "the neighbour was not sent to"


def test_disputes_are_checked_and_a_new_record_closes_the_task(world: tuple) -> None:
    sessions, built = world
    with sessions.begin() as s:
        make_tasks(s, 1, COUNTY, NOW)
    device = built.counties[HOME].device_id  # type: ignore[attr-defined]
    neighbour = built.counties[NEIGHBOUR].device_id  # type: ignore[attr-defined]
    with sessions() as s:
        ids = {t.kind: t.task_id for t in task_messages(s, device)}
    hostile = [
        data_pb2.TaskAnswer(task_id="T0", answer="disputed", reason="x"),
        data_pb2.TaskAnswer(task_id="1; DROP TABLE", answer="disputed", reason="x"),
        data_pb2.TaskAnswer(task_id=ids["problem"], answer="closed", reason="x"),
        data_pb2.TaskAnswer(task_id=ids["problem"], answer="disputed", reason="   "),
        data_pb2.TaskAnswer(task_id=ids["problem"], answer="disputed", reason="x" * 501),
        data_pb2.TaskAnswer(task_id="T" + "9" * 17, answer="disputed", reason="x"),
    ]
    with sessions.begin() as s:
        results = answer_tasks(s, device, hostile, NOW)
        assert [r.accepted for r in results] == [False] * len(hostile)
        other = answer_tasks(
            s,
            neighbour,
            [data_pb2.TaskAnswer(task_id=ids["problem"], answer="disputed", reason="x")],
            NOW,
        )
        assert not other[0].accepted and "没有这个任务" in other[0].reason
        assert len(answer_tasks(s, device, [hostile[0]] * 500, NOW)) == 200
    with sessions.begin() as s:
        (ok,) = answer_tasks(
            s,
            device,
            [
                data_pb2.TaskAnswer(
                    task_id=ids["problem"], answer="disputed", reason="户口本无误", clerk="li"
                )
            ],
            NOW,
        )
        assert ok.accepted
        (again,) = answer_tasks(
            s,
            device,
            [data_pb2.TaskAnswer(task_id=ids["problem"], answer="disputed", reason="再次")],
            NOW,
        )
        assert not again.accepted
    with sessions.begin() as s:
        closed = close_for_records(
            s,
            [
                {
                    "record_id": "r-new",
                    "township_code": TOWNSHIP[HOME],
                    "id_number": "370902197001010022",
                    "received_at": NOW,
                }
            ],
        )
        assert closed == 1
    with sessions() as s:
        statuses = {
            t.kind: (t.status, t.closed_record_id, t.answer_reason)
            for t in s.scalars(select(CentreTask))
        }
        assert statuses == {
            "problem": ("disputed", None, "户口本无误"),
            "missing": ("closed", "r-new", ""),
        }
        findings = {
            f.status
            for f in s.scalars(
                select(ComparisonFinding).where(ComparisonFinding.township_code == TOWNSHIP[HOME])
            )
        }
        assert findings == {"disputed", "closed"}
        assert task_messages(s, device) == []
    with sessions.begin() as s:
        supersede_returned(s, [])  # nothing to do, nothing changes


def test_a_county_admin_sees_runs_of_its_area_and_of_wider_areas(world: tuple) -> None:
    """A national run (no --region) or a city's run has findings in the county, so the county's
    /tasks page offers it; a run of another county or city does not show there."""
    sessions, _ = world
    with sessions.begin() as s:
        base = s.scalars(select(ComparisonRun)).one()
        fields = {c: getattr(base, c) for c in ("department", "extract_id", "collected_source")}
        counts = {
            c: 0
            for c in (
                "department_rows",
                "collected_rows",
                "linked_exact",
                "linked_probabilistic",
                "problems",
                "missing",
                "deaths",
            )
        }
        for prefix in ("3709", HOME, f"{HOME}001", NEIGHBOUR, "3701", "37"):
            s.add(
                ComparisonRun(
                    region_prefix=prefix,
                    engine="duckdb",
                    run_by="t",
                    run_at=NOW,
                    **fields,
                    **counts,
                )
            )
    with sessions() as s:
        seen = [r.region_prefix for r in runs_in_view(s, HOME)]
        everything = {r.region_prefix for r in runs_in_view(s, "")}
    assert sorted(seen) == sorted(["", "3709", HOME, f"{HOME}001", "37"])
    assert everything == {"", "3709", HOME, f"{HOME}001", NEIGHBOUR, "3701", "37"}
