"""The annual confirmation at the centre over SQLite: the CLI as a county operator uses it (roll
with its rejection file, files that cannot be read, plan, report), the Friday job under the
supervisor on a virtual clock, and the admin pages (masked notice, the finance list, English)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session, sessionmaker

from controller.accounts.admins import add_admin, issue_token
from controller.admin import create_admin_app
from controller.confirmation.campaigns import create_campaign, find_campaign
from controller.confirmation.roll import import_roll
from controller.confirmation.steps import publish_notice
from controller.confirmation.weekly import WeeklyReporter, next_report_time
from controller.db import make_engine, migrate, session_factory
from muster.cli import cli
from muster.clock import CAMPAIGN_TZ, SystemClock, VirtualClock
from muster.supervisor import Supervisor
from tests.unit.confirmation_world import COUNTY, PEOPLE, at_cst, load_people, write_roll


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    engine = make_engine(url)
    yield url, session_factory(engine)
    engine.dispose()


def _cli(url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        cli, ["controller", "confirmation", *args, "--database-url", url], catch_exceptions=False
    )
    return result.exit_code, result.stdout, result.stderr


def test_the_operator_opens_a_campaign_imports_the_roll_and_plans_visits(
    db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    """The commands a county operator runs, with the rejection file and a second import."""
    url, sessions = db
    load_people(sessions, tmp_path, SystemClock())
    year = 2026  # ages (and so the plan) are counted on this campaign's dates, whatever today is
    code, out, _ = _cli(url, "campaign", "create", "--year", str(year), "--county", COUNTY)
    assert code == 0 and json.loads(out.splitlines()[-1])["publicity"][0] == f"{year}-10-10"
    code, _, err = _cli(url, "campaign", "create", "--year", str(year), "--county", COUNTY)
    assert code == 2 and "已经建立" in err
    code, _, err = _cli(url, "campaign", "create", "--year", str(year), "--county", "320700")
    assert code == 2 and "区县代码" in err

    roll = write_roll(tmp_path / "roll.csv", [["12345", "残疾军人", "100", ""]])
    common = ["--year", str(year), "--county", COUNTY]
    code, out, err = _cli(url, "roll", "import", *common, "--file", str(roll))
    assert code == 0 and json.loads(out.splitlines()[-1])["added"] == 14
    rejected = (tmp_path / "roll.csv.rejected.csv").read_text(encoding="utf-8-sig")
    assert "12345" in rejected and "第 16 行" in err
    code, out, _ = _cli(url, "roll", "import", *common, "--file", str(roll))
    assert json.loads(out.splitlines()[-1])["unchanged"] == 14

    headless = tmp_path / "bad.csv"
    headless.write_text("姓名,金额\n张三,100\n", encoding="utf-8")
    code, _, err = _cli(url, "roll", "import", *common, "--file", str(headless))
    assert code == 2 and "公民身份号码" in err and "未导入任何数据" in err
    fake = tmp_path / "roll.xlsx"
    fake.write_bytes(b"PK\x03\x04 not really a workbook")
    code, _, err = _cli(url, "roll", "import", *common, "--file", str(fake))
    assert code == 2 and "不是有效的 Excel" in err

    code, out, _ = _cli(url, "plan-visits", *common)
    plan = json.loads(out.splitlines()[-1])
    assert plan["townships"] == 2 and sum(r["visits"] for r in plan["plan"]) == 11

    code, _, err = _cli(url, "death", *common, "--id", PEOPLE["a1940"].id_number, "--date", "1 May")
    assert code == 2 and "YYYY-MM-DD" in err
    code, _, err = _cli(url, "restore", *common, "--id", PEOPLE["a1940"].id_number, "--reason", "x")
    assert code == 2 and "不能恢复发放" in err
    code, out, _ = _cli(url, "report", *common, "--week", "--out", str(tmp_path / "w.xlsx"))
    assert code == 0 and (tmp_path / "w.xlsx").stat().st_size > 0
    code, _, err = _cli(url, "report", "--year", "1999", "--county", COUNTY, "--week")
    assert code == 2


def test_the_friday_job_writes_the_workbook_under_the_supervisor(
    db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    """On a virtual clock the supervised job sleeps until Friday 17:00 Beijing time, writes the
    campaign's workbook once, and sleeps until the next Friday."""
    _url, sessions = db
    clock = VirtualClock(at_cst(2026, 10, 19, 9))  # a Monday
    load_people(sessions, tmp_path, clock)
    with sessions.begin() as session:
        campaign_id = create_campaign(session, year=2026, county=COUNTY, clock=clock).id
    import_roll(sessions, campaign_id, write_roll(tmp_path / "roll.csv"), clock=clock)
    out = tmp_path / "weekly"
    reporter = WeeklyReporter(sessions, clock, out)

    async def scenario() -> list[str]:
        supervisor = Supervisor(clock)
        supervisor.add("confirmation-weekly", reporter.run)
        running = asyncio.create_task(supervisor.run())
        names = []
        await clock.advance(3600, sleepers=1)
        names.append(sorted(p.name for p in out.glob("*.xlsx")))
        await clock.advance(4.5 * 86400, sleepers=1)  # Friday 22:00, past 17:00
        names.append(sorted(p.name for p in out.glob("*.xlsx")))
        await clock.advance(7 * 86400, sleepers=1)
        names.append(sorted(p.name for p in out.glob("*.xlsx")))
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return [",".join(n) for n in names]

    # On start, the Friday just gone (publicity week, missed while down) is written at once.
    first, friday, next_friday = asyncio.run(scenario())
    weeks = [f"weekly-{COUNTY}-2026-2026-10-{d}.xlsx" for d in (16, 23, 30)]
    assert first.split(",") == weeks[:1]
    assert friday.split(",") == weeks[:2]
    assert next_friday.split(",") == weeks


def test_next_report_time_is_friday_five_pm_beijing() -> None:
    friday = next_report_time(at_cst(2026, 10, 23, 16)).astimezone(CAMPAIGN_TZ)
    assert (friday.date(), friday.hour) == (date(2026, 10, 23), 17)
    later = next_report_time(at_cst(2026, 10, 23, 17)).astimezone(CAMPAIGN_TZ)
    assert later.date() == date(2026, 10, 30)


async def test_admin_pages_mask_the_notice_and_list_the_stops(
    db: tuple[str, sessionmaker[Session]], tmp_path: Path
) -> None:
    """The notice page shows 赵*强, never the name or the ID number; English with ?lang=en; an
    admin of another county is refused."""
    _url, sessions = db
    clock = VirtualClock(at_cst(2026, 12, 2))
    load_people(sessions, tmp_path, clock)
    with sessions.begin() as session:
        campaign_id = create_campaign(session, year=2026, county=COUNTY, clock=clock).id
        add_admin(
            session,
            username="guanyun",
            role="county",
            region=COUNTY,
            password="Pw-123456789",
            now=clock.now(),
        )
        add_admin(
            session,
            username="other",
            role="county",
            region="320724",
            password="Pw-123456789",
            now=clock.now(),
        )
        token = issue_token(session, "guanyun", now=clock.now())
        other = issue_token(session, "other", now=clock.now())
    import_roll(sessions, campaign_id, write_roll(tmp_path / "roll.csv"), clock=clock)
    with sessions.begin() as session:
        publish_notice(
            session,
            find_campaign(session, 2026, COUNTY),
            day=clock.today(),
            at=clock.now(),
            by="ops",
        )
    app = create_admin_app(sessions, clock=clock, upload_keys=lambda: {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        query = f"year=2026&county={COUNTY}"
        notice = await c.get(
            f"/confirmation/notice?{query}", headers={"Authorization": f"Bearer {token}"}
        )
        assert notice.status_code == 200 and "赵*强" in notice.text
        assert "赵志强" not in notice.text and PEOPLE["a1958"].id_number not in notice.text
        english = await c.get(
            f"/confirmation?{query}&lang=en", headers={"Authorization": f"Bearer {token}"}
        )
        assert "Annual confirmation" in english.text and "Behind" in english.text
        xlsx = await c.get(
            f"/confirmation/weekly.xlsx?{query}", headers={"Authorization": f"Bearer {token}"}
        )
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
        refused = await c.get(
            f"/confirmation/stops?{query}", headers={"Authorization": f"Bearer {other}"}
        )
        assert refused.status_code == 403 and "赵志强" not in refused.text
        missing = await c.get(
            "/confirmation?year=2025&county=320723", headers={"Authorization": f"Bearer {token}"}
        )
        assert missing.status_code == 404
