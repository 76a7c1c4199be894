"""The annual confirmation's rules (muster.confirmation): the status table, age bands and home-
visit quotas, the phases, the 60-day stop from the next month, months owed on restoration, the
over-payment after a death, masked names and the replayable spot-check sample."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from muster.confirmation import (
    AGE_BANDS,
    TRANSITIONS,
    AgeBand,
    ConfirmationError,
    Event,
    Phase,
    Status,
    add_months,
    age_band,
    age_on,
    default_phases,
    expected_by,
    mask_name,
    month_of,
    months_between,
    months_owed,
    overpayment,
    parse_amount_fen,
    parse_category,
    quota_behind,
    spot_sample,
    stop_eligible_on,
    stop_from_month,
    transition,
    visits_required,
)

days = st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))


def test_the_happy_path_and_the_stop_path_follow_the_table() -> None:
    """to confirm → confirmed; to confirm → unreachable → stop pending → stopped → restored."""
    assert transition(Status.TO_CONFIRM, Event.CONFIRM) is Status.CONFIRMED
    status = Status.TO_CONFIRM
    for event in (Event.NOTICE, Event.PROPOSE_STOP, Event.APPROVE_STOP, Event.RESTORE):
        status = transition(status, event)
    assert status is Status.RESTORED


@given(st.sampled_from(list(Status)), st.sampled_from(list(Event)))
def test_every_pair_is_in_the_table_or_refused_by_name(status: Status, event: Event) -> None:
    """No pair falls through: the table answers, or the refusal names the status and event."""
    if (status, event) in TRANSITIONS:
        assert transition(status, event) is TRANSITIONS[(status, event)]
    else:
        with pytest.raises(ConfirmationError) as caught:
            transition(status, event)
        assert event.value in str(caught.value) and status.value in str(caught.value)


def test_death_ends_every_status_and_nothing_leaves_it() -> None:
    """A death is recorded from any living status; a deceased person takes no further step."""
    for status in Status:
        if status is not Status.DECEASED:
            assert transition(status, Event.DEATH) is Status.DECEASED
    for event in Event:
        with pytest.raises(ConfirmationError):
            transition(Status.DECEASED, event)


def test_a_stopped_person_is_not_confirmed_without_restoration() -> None:
    """Payments stopped are restored by the rules, never by a plain confirmation."""
    with pytest.raises(ConfirmationError):
        transition(Status.STOPPED, Event.CONFIRM)


@given(days, days)
def test_age_band_is_by_whole_years(birth: date, day: date) -> None:
    """80 and over, 70 to 79, under 70, counted in whole years on the day."""
    age = age_on(birth, day)
    band = age_band(birth, day)
    assert band is (
        AgeBand.AGE_80_PLUS if age >= 80 else AgeBand.AGE_70_79 if age >= 70 else AgeBand.UNDER_70
    )


def test_age_turns_on_the_birthday() -> None:
    assert age_on(date(1946, 10, 16), date(2026, 10, 15)) == 79
    assert age_on(date(1946, 10, 16), date(2026, 10, 16)) == 80


@given(st.integers(min_value=0, max_value=100_000), st.sampled_from(AGE_BANDS))
def test_visits_required_is_the_quota_rounded_up(people: int, band: AgeBand) -> None:
    """At least the quota's share, never one more than needed, never more than the band."""
    percent = {AgeBand.AGE_80_PLUS: 100, AgeBand.AGE_70_79: 80, AgeBand.UNDER_70: 60}[band]
    required = visits_required(band, people)
    assert required * 100 >= people * percent
    assert (required - 1) * 100 < people * percent or required == 0
    assert required <= people


def test_quota_examples() -> None:
    assert visits_required(AgeBand.AGE_70_79, 5) == 4
    assert visits_required(AgeBand.UNDER_70, 3) == 2
    assert visits_required(AgeBand.AGE_80_PLUS, 7) == 7


@given(st.integers(min_value=0, max_value=1000), days)
def test_pace_is_monotone_and_complete_at_the_end(required: int, day: date) -> None:
    """The expected count never falls as days pass and is all of it from the last day."""
    phase = default_phases(2026).confirmation
    assert expected_by(required, day, phase) <= expected_by(required, day + timedelta(1), phase)
    assert expected_by(required, phase.end, phase) == required
    assert expected_by(required, phase.start - timedelta(1), phase) == 0


def test_a_band_is_behind_while_short_of_the_pace() -> None:
    phase = default_phases(2026).confirmation
    assert quota_behind(0, 10, date(2026, 11, 1), phase)
    assert not quota_behind(10, 10, date(2026, 11, 1), phase)
    assert quota_behind(9, 10, date(2026, 12, 5), phase)


def test_default_phases_are_those_of_s22() -> None:
    phases = default_phases(2026)
    assert phases.publicity == Phase(date(2026, 10, 10), date(2026, 10, 15))
    assert phases.confirmation == Phase(date(2026, 10, 16), date(2026, 11, 30))
    assert phases.notice == Phase(date(2026, 12, 1), date(2027, 1, 29))
    assert phases.summary == Phase(date(2026, 12, 10), date(2026, 12, 15))
    assert phases.active(date(2026, 12, 12)) == ("notice", "summary")
    assert type(phases).from_json(phases.to_json()) == phases


def test_phases_out_of_order_are_refused() -> None:
    """A campaign's own dates may move, but not so that notice comes before confirmation ends."""
    phases = default_phases(2026)
    with pytest.raises(ConfirmationError, match="公告"):
        phases.with_changes({"notice": (date(2026, 11, 20), date(2027, 1, 20))})
    with pytest.raises(ConfirmationError, match="没有阶段"):
        phases.with_changes({"party": (date(2026, 11, 20), date(2027, 1, 20))})
    with pytest.raises(ConfirmationError):
        type(phases).from_json({"publicity": ["2026-10-10"]})


@given(days)
def test_stop_needs_sixty_days_and_takes_effect_next_month(noticed: date) -> None:
    """Sixty days after the notice a stop may be proposed; payments stop from the next month."""
    eligible = stop_eligible_on(noticed)
    assert (eligible - noticed).days == 60
    stop = stop_from_month(eligible)
    assert stop.day == 1 and months_between(eligible, stop) == 1


@given(days, days)
def test_months_owed_counts_every_stopped_month_up_to_restoration(
    approved: date, restored: date
) -> None:
    stop = stop_from_month(approved)
    owed = months_owed(stop, restored)
    assert owed >= 0
    if restored < stop:
        assert owed == 0
    else:
        assert add_months(stop, owed - 1) == month_of(restored)


def test_months_owed_example() -> None:
    """Stopped from February, restored on 10 April: February, March and April are owed."""
    assert months_owed(date(2027, 2, 1), date(2027, 4, 10)) == 3


@given(st.integers(min_value=1, max_value=10_000_000), days, days)
def test_overpayment_is_amount_times_months_after_the_month_of_death(
    monthly: int, death: date, paid_through: date
) -> None:
    months, fen = overpayment(monthly, death, paid_through)
    assert fen == months * monthly
    assert months == max(0, months_between(death, paid_through))


def test_overpayment_example() -> None:
    """Died 15 March, paid through June: April, May and June were paid in error."""
    assert overpayment(150_000, date(2027, 3, 15), date(2027, 6, 1)) == (3, 450_000)
    assert overpayment(150_000, date(2027, 3, 15), date(2027, 3, 1)) == (0, 0)


@pytest.mark.parametrize(
    ("name", "masked"),
    [("张三", "张*"), ("张小三", "张*三"), ("欧阳小华", "欧**华"), ("李", "*"), ("", "*")],
)
def test_names_are_masked_for_the_notice(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@given(st.text(min_size=3, max_size=12).filter(lambda s: s.strip() == s and len(s) >= 3))
def test_a_masked_name_hides_the_middle(name: str) -> None:
    masked = mask_name(name)
    assert masked[0] == name[0] and masked[-1] == name[-1] and set(masked[1:-1]) == {"*"}


@given(
    st.sets(st.from_regex(r"\d{18}", fullmatch=True), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=80),
    st.integers(min_value=0, max_value=2**63),
)
def test_spot_sample_replays_from_its_seed(population: set[str], size: int, seed: int) -> None:
    """The same seed draws the same people whatever order they come in, all of the population."""
    ordered = sorted(population)
    first = spot_sample(ordered, size, seed)
    again = spot_sample(reversed(ordered), size, seed)
    assert first == again
    assert len(first) == min(size, len(population)) and set(first) <= population


@pytest.mark.parametrize(
    ("text", "fen"), [("1234.5", 123450), ("1,234.50", 123450), (880, 88000), ("0.01", 1)]
)
def test_amounts_are_read_in_fen(text: object, fen: int) -> None:
    assert parse_amount_fen(text) == fen


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "1.234", "NaN", "Infinity", "1e9", None])
def test_bad_amounts_are_refused_by_name(text: object) -> None:
    with pytest.raises(ConfirmationError, match="月发放金额"):
        parse_amount_fen(text)


def test_categories_by_code_or_name() -> None:
    assert parse_category("残疾军人").value == "disabled_soldier"
    assert parse_category(" rural_veteran_60 ").value == "rural_veteran_60"
    with pytest.raises(ConfirmationError, match="残疾军人"):
        parse_category("退役士兵")
