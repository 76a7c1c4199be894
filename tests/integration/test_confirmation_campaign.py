"""A year's annual confirmation for a simulated county (灌云县), end to end on the real PostgreSQL,
on a virtual clock across its phases: the roll imported (bad rows rejected, a second import
changing nothing), home visits planned by quota, confirmations by home visit (one failed face
check resolved by a manual check), at the station and by self-service, quotas reported with a
warning where a band is behind, the unconfirmed noticed, one stopped from the next month and
restored with the months owed, deaths (reported at a visit and found in funeral records) with
their over-payment and recovery, a spot check replayed from its seed, and the Friday workbook
written by the job once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.confirmation.attempts import resolve_attempt, submit_attempt
from controller.confirmation.campaigns import (
    create_campaign,
    find_campaign,
    plan_visits,
    visit_list,
)
from controller.confirmation.reports import notice_list, progress, stop_list
from controller.confirmation.roll import import_roll
from controller.confirmation.spot_checks import draw_spot_check, replay_spot_check
from controller.confirmation.steps import (
    ConfirmationReport,
    apply_confirmation,
    apply_funeral_deaths,
    approve_stop,
    propose_stops,
    publish_notice,
    record_contact,
    record_death,
    record_recovery,
)
from controller.confirmation.weekly import WeeklyReporter
from controller.db import make_engine, migrate, session_factory
from controller.db.models import (
    ComparisonRun,
    ConfirmationEvent,
    ConfirmationSubject,
    DeceasedPerson,
    DepartmentExtract,
    SelfServiceAttempt,
)
from muster.clock import VirtualClock
from muster.confirmation import AgeBand, Channel, ConfirmationError, FaceResult, Status
from tests.unit.confirmation_world import (
    COUNTY,
    PEOPLE,
    TOWNSHIP_A,
    TOWNSHIP_B,
    at_cst,
    camera_jpeg,
    load_people,
    write_roll,
)


@pytest.fixture
def sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    yield session_factory(engine)
    engine.dispose()


def _visit(clock: VirtualClock, key: str, device: str, **kw: object) -> ConfirmationReport:
    fields: dict[str, object] = {
        "id_number": PEOPLE[key].id_number,
        "channel": Channel.HOME_VISIT,
        "at": clock.now(),
        "by": "clerk-a" if key.startswith("a") else "clerk-b",
        "device_id": device,
        "face_result": FaceResult.MATCH,
        "face_score": 0.71,
        "source_id": f"rec-{key}",
    } | kw
    return ConfirmationReport(**fields)  # type: ignore[arg-type]


def _status(session: Session, campaign_id: int, key: str) -> ConfirmationSubject:
    found = session.get(ConfirmationSubject, (campaign_id, PEOPLE[key].id_number))
    assert found is not None
    return found


def test_a_county_campaign_runs_through_its_phases(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """The whole year of one county, phase by phase, with what each admin list says."""
    clock = VirtualClock(at_cst(2026, 10, 9))
    load_people(sessions, tmp_path, clock)
    with sessions.begin() as session:
        campaign_id = create_campaign(session, year=2026, county=COUNTY, clock=clock, by="ops").id
        with pytest.raises(ConfirmationError, match="已经建立"):
            create_campaign(session, year=2026, county=COUNTY, clock=clock)

    # The roll: every person of the county, and three rows that must not go in.
    roll = write_roll(
        tmp_path / "roll.csv",
        [
            [PEOPLE["a1940"].id_number[:-1] + "0", "残疾军人", "100", ""],  # wrong check digit
            ["110101199003070011", "残疾军人", "100", ""],  # not a person of this county
            [PEOPLE["b1975"].id_number, "残疾军人", "-3", ""],  # a duplicate, and no amount
        ],
    )
    report = import_roll(sessions, campaign_id, roll, clock=clock)
    assert report.summary() == {
        "rows": 17,
        "added": 14,
        "changed": 0,
        "unchanged": 0,
        "rejected": 3,
    }
    assert [r.code for r in report.rejected] == ["id_invalid", "not_in_county", "duplicate"]
    again = import_roll(sessions, campaign_id, roll, clock=clock)
    assert (again.added, again.changed, again.unchanged) == (0, 0, 14)

    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        plan = {
            (r.township_code, r.band): (r.people, r.required)
            for r in plan_visits(session, campaign)
        }
        assert plan[(TOWNSHIP_A, AgeBand.AGE_80_PLUS)] == (1, 1)
        assert plan[(TOWNSHIP_A, AgeBand.AGE_70_79)] == (2, 2)
        assert plan[(TOWNSHIP_A, AgeBand.UNDER_70)] == (4, 3)
        assert plan[(TOWNSHIP_B, AgeBand.UNDER_70)] == (5, 3)
        planned_a = {s.id_number for s in visit_list(session, campaign, TOWNSHIP_A)}
        assert planned_a == {
            PEOPLE[k].id_number for k in ("a1940", "a1950", "a1952", "a1958", "a1960", "a1963")
        }
        # Monthly amounts in fen, the name and township from the initial data.
        assert _status(session, campaign_id, "a1940").monthly_fen == 228050
        assert _status(session, campaign_id, "a1940").name == "张德三"

    # Confirmation phase: home visits on the portable devices, a station, self-service.
    clock.set_wall(at_cst(2026, 10, 20))
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        for key in ("a1940", "a1950", "a1960", "a1965"):
            apply_confirmation(session, campaign, _visit(clock, key, "dev-portable-a"))
        for key in ("b1944", "b1954", "b1962", "b1966", "b1968"):
            apply_confirmation(session, campaign, _visit(clock, key, "dev-portable-b"))
        # A resend of the same sealed confirmation changes nothing.
        apply_confirmation(session, campaign, _visit(clock, "a1940", "dev-portable-a"))
        with pytest.raises(ConfirmationError, match="人工核验"):
            apply_confirmation(
                session,
                campaign,
                _visit(clock, "a1952", "dev-portable-a", face_result=FaceResult.NO_MATCH),
            )
        with pytest.raises(ConfirmationError, match="理由"):
            apply_confirmation(
                session,
                campaign,
                _visit(clock, "a1952", "dev-portable-a", face_result=FaceResult.MANUAL),
            )
        apply_confirmation(
            session,
            campaign,
            _visit(
                clock,
                "a1952",
                "dev-portable-a",
                face_result=FaceResult.MANUAL,
                manual_reason="人脸比对未通过（照片为二十年前），已核对身份证原件和本人",
            ),
        )
        apply_confirmation(
            session,
            campaign,
            _visit(clock, "b1975", "dev-fixed-b", channel=Channel.STATION, source_id="rec-b1975"),
        )
    with sessions.begin() as session:
        answer = submit_attempt(
            session,
            address="198.51.100.7",
            id_number=PEOPLE["b1970"].id_number,
            phone="13900001111",
            selfie=camera_jpeg(),
            clock=clock,
        )
        assert answer.ok and answer.outcome == "pending_face"
    with sessions.begin() as session:
        attempt = session.scalars(select(SelfServiceAttempt)).one()
        assert _status(session, campaign_id, "b1970").status == Status.TO_CONFIRM.value
        resolve_attempt(
            session, attempt.id, accept=True, reason="照片与档案照片一致", by="clerk-b", clock=clock
        )
    with sessions() as session:
        b1970 = _status(session, campaign_id, "b1970")
        assert (b1970.status, b1970.channel, b1970.face_result) == (
            "confirmed",
            "self_service",
            "manual",
        )
        assert b1970.phone == "13900001111"
        a1940 = _status(session, campaign_id, "a1940")
        assert (a1940.channel, a1940.confirmed_device, a1940.confirmed_by) == (
            "home_visit",
            "dev-portable-a",
            "clerk-a",
        )
        events = session.scalars(
            select(ConfirmationEvent).where(
                ConfirmationEvent.id_number == PEOPLE["a1940"].id_number
            )
        ).all()
        assert len(events) == 1  # the resend left no second event

    # The weekly workbook on the first Friday, written once whatever runs it again.
    clock.set_wall(at_cst(2026, 10, 23, 18))
    reporter = WeeklyReporter(sessions, clock, tmp_path / "weekly")
    written = reporter.run_once()
    assert [p.name for p in written] == [f"weekly-{COUNTY}-2026-2026-10-23.xlsx"]
    assert reporter.run_once() == []
    book = load_workbook(written[0], read_only=True)
    assert book.sheetnames == ["确认进度", "公告名单", "停发名单", "多发追回"]
    cells = [c for row in book["确认进度"].iter_rows(values_only=True) for c in row]
    assert f"合计 {COUNTY}" in cells or any(str(c).startswith("合计") for c in cells if c)

    # End of the confirmation phase: A's under-70 home visits are short (2 of 3), B's met.
    with sessions() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        rows, total = progress(session, campaign, date(2026, 11, 30))
        by_code = {r.code: r for r in rows}
        a_young = by_code[TOWNSHIP_A].bands[AgeBand.UNDER_70]
        assert (a_young.home_visits, a_young.visits_required, a_young.behind) == (2, 3, True)
        b_young = by_code[TOWNSHIP_B].bands[AgeBand.UNDER_70]
        assert (b_young.home_visits, b_young.visits_required, b_young.behind) == (3, 3, False)
        assert b_young.by_channel == {"home_visit": 3, "self_service": 1, "station": 1}
        assert by_code[TOWNSHIP_B].bands[AgeBand.UNDER_70].percent == 100.0
        assert total.people == 14 and total.confirmed == 12

    # Public notice: too early on 30 November, then from 1 December.
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        with pytest.raises(ConfirmationError, match="公告自"):
            publish_notice(session, campaign, day=date(2026, 11, 30), at=clock.now(), by="ops")
    clock.set_wall(at_cst(2026, 12, 1))
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        noticed = publish_notice(session, campaign, day=clock.today(), at=clock.now(), by="ops")
        assert {s.id_number for s in noticed} == {
            PEOPLE["a1958"].id_number,
            PEOPLE["a1963"].id_number,
        }
        record_contact(
            session,
            campaign,
            PEOPLE["a1958"].id_number,
            at=clock.now(),
            by="clerk-a",
            note="电话 13812345678 无人接听；邻居称外出务工",
        )
        lines = notice_list(session, campaign)
        assert sorted(line.masked_name for line in lines) == ["周*华", "赵*强"]
    clock.set_wall(at_cst(2026, 12, 4, 18))
    (notice_book,) = reporter.run_once()
    notice_cells = {
        c
        for row in load_workbook(notice_book, read_only=True)["公告名单"].iter_rows(
            values_only=True
        )
        for c in row
    }
    assert "赵*强" in notice_cells and "赵志强" not in notice_cells

    # During the notice one of them comes to the station.
    clock.set_wall(at_cst(2026, 12, 20))
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        apply_confirmation(
            session,
            campaign,
            _visit(clock, "a1963", "dev-fixed-a", channel=Channel.STATION, source_id="rec-a1963"),
        )

    # Sixty days: not on the 59th, then proposed and approved; payments stop from February.
    clock.set_wall(at_cst(2027, 1, 29))
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        assert propose_stops(session, campaign, day=clock.today(), at=clock.now(), by="ops") == []
        with pytest.raises(ConfirmationError, match="满 60 日"):
            approve_stop(
                session,
                campaign,
                PEOPLE["a1958"].id_number,
                day=clock.today(),
                at=clock.now(),
                by="ops",
            )
    clock.set_wall(at_cst(2027, 1, 30))
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        proposed = propose_stops(session, campaign, day=clock.today(), at=clock.now(), by="ops")
        assert [s.id_number for s in proposed] == [PEOPLE["a1958"].id_number]
        stopped = approve_stop(
            session,
            campaign,
            PEOPLE["a1958"].id_number,
            day=clock.today(),
            at=clock.now(),
            by="county-head",
        )
        assert (stopped.status, stopped.stop_from) == ("stopped", "2027-02-01")

    # April: the stopped man confirms at the station and is restored with February to April owed;
    # a death reported at a visit and one found in funeral records, with their over-payments.
    clock.set_wall(at_cst(2027, 4, 10))
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        restored = apply_confirmation(
            session,
            campaign,
            _visit(clock, "a1958", "dev-fixed-a", channel=Channel.STATION, source_id="rec-a1958"),
        )
        assert (restored.status, restored.months_owed) == ("restored", 3)
        died = record_death(
            session,
            campaign,
            PEOPLE["a1940"].id_number,
            death_date=date(2027, 1, 15),
            day=clock.today(),
            at=clock.now(),
            by="clerk-a",
            source="visit",
        )
        assert (died.overpaid_months, died.overpaid_fen) == (3, 3 * 228050)
        with pytest.raises(ConfirmationError, match="超过"):
            record_recovery(
                session, campaign, died.id_number, amount_fen=10**9, at=clock.now(), by="finance"
            )
        record_recovery(
            session, campaign, died.id_number, amount_fen=228050, at=clock.now(), by="finance"
        )
        session.add(
            DepartmentExtract(
                extract_id="e" * 64,
                department="funeral",
                region_prefix=COUNTY,
                file_name="f.csv",
                rows=1,
                rejected=0,
                imported_by="ops",
                imported_at=clock.now(),
            )
        )
        session.flush()
        run = ComparisonRun(
            department="funeral",
            region_prefix=COUNTY,
            extract_id="e" * 64,
            collected_source="db",
            engine="duckdb",
            run_by="ops",
            run_at=clock.now(),
            department_rows=1,
            collected_rows=14,
            linked_exact=1,
            linked_probabilistic=0,
            problems=0,
            missing=0,
            deaths=1,
        )
        session.add(run)
        session.flush()
        session.add(
            DeceasedPerson(
                id_number=PEOPLE["b1944"].id_number,
                name="郑广田",
                township_code=TOWNSHIP_B,
                death_date="2026-12-20",
                run_id=run.id,
                recorded_at=clock.now(),
            )
        )
    with sessions.begin() as session:
        campaign = find_campaign(session, 2026, COUNTY)
        (found,) = apply_funeral_deaths(
            session, campaign, day=clock.today(), at=clock.now(), by="ops"
        )
        assert (found.death_source, found.overpaid_months, found.overpaid_fen) == (
            "funeral",
            4,
            800000,
        )
        assert (
            apply_funeral_deaths(session, campaign, day=clock.today(), at=clock.now(), by="ops")
            == []
        )
        deceased = session.get(DeceasedPerson, PEOPLE["b1944"].id_number)
        assert deceased is not None and deceased.payment_stop == "stopped"

        finance = {line.id_number: line for line in stop_list(session, campaign)}
        assert finance[PEOPLE["a1958"].id_number].months_owed == 3
        assert finance[PEOPLE["a1940"].id_number].stop_from == "2027-05-01"
        assert finance[PEOPLE["b1944"].id_number].reason == "deceased"

        # A spot check: drawn from its seed, stored, replayable; a re-confirmation keeps the status.
        check = draw_spot_check(session, campaign, seed=2027, size=3, clock=clock, by="auditor")
        assert replay_spot_check(check) and len(check.sample) == 3
        again_check = draw_spot_check(
            session, campaign, seed=2027, size=3, clock=clock, by="auditor"
        )
        assert again_check.sample == check.sample
        sampled = check.sample[0]
        before = session.get(ConfirmationSubject, (campaign.id, sampled))
        assert before is not None
        status_before = before.status
        apply_confirmation(
            session,
            campaign,
            ConfirmationReport(
                id_number=sampled,
                channel=Channel.HOME_VISIT,
                at=clock.now(),
                by="inspector",
                device_id="dev-portable-a",
                face_result=FaceResult.MATCH,
                note="抽查",
            ),
        )
        assert before.status == status_before
