"""A record's whole life, on the device and at the centre, as one table (S-04, S-07).

::

    device   draft ──submit──▶ entered ──check──▶ reviewed ──sign──▶ signed ──seal──▶ sealed
               ▲                 │                                                  │
               └───send_back─────┘                             acked ◀──stored──────┤
                                                            rejected ◀──refused─────┘
    centre   collected ──approve──▶ approved
                 │                     │
                 └──return──▶ returned ◀┘ ──corrected record arrives──▶ superseded

Two reviews, two words. On the device a second clerk *checks* (复核) what the first entered and
may *send it back* (退回修改); at the centre the county *approves* (审核通过) or *returns*
(退回乡镇) a record, and a returned record is *superseded* by the corrected one the township
seals again. The console workflow (``edge.console.workflow``) and the centre's review
(``controller.records.review``) both move a record by :func:`next_state`; anything not in the table is
refused with the state's own message. Sans-I/O: states in, states out.

The state keys are stored (the device's drafts and outbox, the centre's ``review_status``), so
they keep their first spelling: the centre's first state is ``collected`` ("received").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from muster.errors import MusterError

__all__ = [
    "CENTRE",
    "DEVICE",
    "STAGES",
    "TRANSITIONS",
    "Stage",
    "StateError",
    "next_state",
]

Side = Literal["device", "centre"]


@dataclass(frozen=True, slots=True)
class Stage:
    """One state of a record: where it is kept, its name for people, and what a refused action
    in this state tells them."""

    key: str
    side: Side
    zh: str
    en: str
    refusal: str


STAGES: Final[dict[str, Stage]] = {
    s.key: s
    for s in (
        Stage("draft", "device", "录入中", "being entered", "该记录尚未提交复核"),
        Stage(
            "entered",
            "device",
            "待复核",
            "waiting for a second clerk's check",
            "该记录已提交复核，录入人不能再修改；如需修改请由复核人退回",
        ),
        Stage(
            "reviewed",
            "device",
            "待签字",
            "checked; waiting for the signature",
            "该记录已复核，等待本人签字",
        ),
        Stage(
            "signed", "device", "待封存", "signed; waiting to be sealed", "该记录已签字，等待封存"
        ),
        Stage(
            "sealed", "device", "待上传", "sealed; waiting to upload", "该记录已封存，不能再修改"
        ),
        Stage("acked", "device", "已上传", "uploaded; held by the centre", "该记录已由中心接收"),
        Stage(
            "rejected",
            "device",
            "被中心拒收",
            "refused by the centre",
            "该记录被中心拒收，请按原因更正后重新封存",
        ),
        Stage(
            "collected", "centre", "待审核", "received; waiting for the county", "该记录待县级审核"
        ),
        Stage("approved", "centre", "已通过", "approved", "该记录已审核通过"),
        Stage("returned", "centre", "已退回", "returned to the township", "该记录已退回乡镇更正"),
        Stage(
            "superseded",
            "centre",
            "已被更正记录取代",
            "superseded by the corrected record",
            "该记录已被更正后的记录取代，不能再审核",
        ),
    )
}

DEVICE: Final = tuple(k for k, s in STAGES.items() if s.side == "device")
CENTRE: Final = tuple(k for k, s in STAGES.items() if s.side == "centre")

# (state, action) -> next state.
TRANSITIONS: Final[dict[tuple[str, str], str]] = {
    # on the device, by the clerks
    ("draft", "edit"): "draft",
    ("draft", "submit"): "entered",
    ("entered", "check"): "reviewed",
    ("entered", "send_back"): "draft",
    ("reviewed", "sign"): "signed",
    ("signed", "sign"): "signed",
    ("signed", "seal"): "sealed",
    # on the device, by the centre's answer to the upload
    ("sealed", "stored"): "acked",
    ("sealed", "refused"): "rejected",
    # at the centre, by the county (it may change its mind until the level above took it in)
    ("collected", "approve"): "approved",
    ("collected", "return"): "returned",
    ("approved", "return"): "returned",
    ("returned", "supersede"): "superseded",
}


class StateError(MusterError):
    """An action the record's state does not allow; the message is the state's refusal."""

    def __init__(self, state: str, action: str) -> None:
        stage = STAGES.get(state)
        super().__init__(stage.refusal if stage else f"未知的记录状态“{state}”")
        self.state = state
        self.action = action


def next_state(state: str, action: str) -> str:
    """The state after ``action``, or :class:`StateError` when this state does not allow it."""
    after = TRANSITIONS.get((state, action))
    if after is None:
        raise StateError(state, action)
    return after
