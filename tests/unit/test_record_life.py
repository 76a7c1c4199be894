"""One table for a record's whole life (muster.record_life), used by the console and the
centre's review: every move is in the table, nothing else is allowed, and each refusal says
what the state allows."""

from __future__ import annotations

import pytest

from muster.record_life import CENTRE, DEVICE, STAGES, TRANSITIONS, StateError, next_state


def test_every_move_joins_two_known_states_of_one_side() -> None:
    """No move jumps between the device and the centre: the upload is the only bridge, and it
    is a new record at the centre, not a state change."""
    for (before, action), after in TRANSITIONS.items():
        assert before in STAGES and after in STAGES, (before, action, after)
        assert STAGES[before].side == STAGES[after].side, (before, action, after)


def test_the_two_reviews_have_distinct_words() -> None:
    """The clerk's check on the device and the county's review at the centre are named apart."""
    device_actions = {a for (s, a) in TRANSITIONS if s in DEVICE}
    centre_actions = {a for (s, a) in TRANSITIONS if s in CENTRE}
    assert {"check", "send_back"} <= device_actions
    assert {"approve", "return"} <= centre_actions
    assert not ({"check", "send_back"} & centre_actions)
    assert not ({"approve", "return"} & device_actions)


def test_the_happy_paths() -> None:
    """A record goes from draft to acked on the device, from received to approved at the centre,
    and a returned one ends superseded by its correction."""
    state = "draft"
    for action in ("edit", "submit", "check", "sign", "seal", "stored"):
        state = next_state(state, action)
    assert state == "acked"
    assert next_state("collected", "approve") == "approved"
    assert next_state(next_state("approved", "return"), "supersede") == "superseded"


@pytest.mark.parametrize(
    ("state", "action"),
    [("entered", "edit"), ("draft", "seal"), ("sealed", "edit"), ("superseded", "approve")],
)
def test_anything_else_is_refused_with_the_states_message(state: str, action: str) -> None:
    """The refusal is the state's own sentence, in Chinese, never a KeyError."""
    with pytest.raises(StateError) as caught:
        next_state(state, action)
    assert str(caught.value) == STAGES[state].refusal
