"""A record's way through the console (S-07): one clerk enters, another reviews, the person
signs, then it is sealed. Sans-I/O: a :class:`Draft` and an action in, a new Draft out, or a
:class:`WorkflowError` saying why not. The transitions are a table; every step appends an
:class:`~muster.records.AuditEntry` naming the clerk, the time and what changed.

States: ``draft`` (being typed) → ``entered`` (submitted for review) → ``reviewed`` (approved by
a second clerk) → ``signed`` (the person's signature or a scan of the signed sheet) → sealed
(the draft is deleted; only the ciphertext in the outbox remains). The last two steps,
signing and turning the draft into the record to seal, are in :mod:`edge.console.sealing`.

Over 400 lines because the transition table, the checks each transition makes and the
correction of a returned record read as one state machine; signing and sealing are in
``edge.console.sealing``.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from muster.classified import find_designation
from muster.errors import MusterError
from muster.forms import (
    CURRENT_VERSION,
    FORMS,
    FormDefinition,
    PersonFacts,
    Problem,
    Validated,
    current_form,
    validate_fields,
)
from muster.forms.codelists import ETHNICITIES
from muster.record_life import STAGES, StateError, next_state
from muster.records import AuditEntry

__all__ = [
    "Draft",
    "WorkflowError",
    "changes_against_initial",
    "check",
    "correction_draft",
    "edit",
    "new_draft",
    "review",
    "submit",
    "transition",
]

State = Literal["draft", "entered", "reviewed", "signed"]

# The console's part of a record's life (muster.record_life): draft → entered → reviewed →
# signed, then sealed into the outbox. Its state names for the clerks' pages:
STATE_NAMES: Final[dict[str, str]] = {
    k: STAGES[k].zh for k in ("draft", "entered", "reviewed", "signed")
}

PERSON_KEYS: Final = ("name", "id_number", "sex", "birth_date", "ethnicity")
PERSON_LABELS: Final[dict[str, str]] = {
    "name": "姓名",
    "id_number": "公民身份号码",
    "sex": "性别",
    "birth_date": "出生日期",
    "ethnicity": "民族",
    "category": "类别",
    "relation": "与军人关系",
}


class WorkflowError(MusterError):
    """An action the record's state or the clerk may not take; the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Draft(BaseModel):
    """A record before sealing: plaintext, so it lives only in the encrypted draft store."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    state: State = "draft"
    category: str
    relation: str = ""
    person: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, Any] = Field(default_factory=dict)
    # What the initial data (S-04) said, as person and form values: the review shows the changes.
    initial: dict[str, Any] = Field(default_factory=dict)
    card: dict[str, str] = Field(default_factory=dict)  # what the ID card said
    photo_jpeg: str = ""  # base64
    photo_reasons: list[str] = Field(default_factory=list)
    signature_png: str = ""  # base64
    signed_sheet_jpeg: str = ""  # base64: a scan of the signed paper sheet instead
    entered_by: str = ""
    reviewed_by: str = ""
    review_note: str = ""
    # A correction asked for by the centre: the record it replaces (returned by the county or
    # refused at upload), or the comparison task it answers, and what the centre said.
    corrects: str = ""
    task_id: str = ""
    task_note: str = ""
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    audit: list[AuditEntry] = Field(default_factory=list)

    @property
    def form(self) -> FormDefinition:
        return current_form(self.category)

    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def current_values(self) -> dict[str, Any]:
        """Person, category and form fields as one flat mapping (what the review compares)."""
        return {
            **{k: self.person.get(k, "") for k in PERSON_KEYS},
            "category": self.category,
            "relation": self.relation,
            **self.fields,
        }


def transition(draft: Draft, action: str) -> str:
    try:
        return next_state(draft.state, action)
    except StateError as exc:
        raise WorkflowError("state", str(exc)) from None


def _diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    keys = [*before, *(k for k in after if k not in before)]
    return {
        k: (before.get(k), after.get(k))
        for k in keys
        if _blank(before.get(k)) != _blank(after.get(k))
    }


def _blank(value: Any) -> Any:
    return None if value in ("", [], None) else value


def initial_values(details: dict[str, Any]) -> dict[str, Any]:
    """The initial data's person, category and the form fields it already answers. The import
    (``muster.initial_data.parse_row``) stored them as the forms' codes: nothing to convert."""
    out: dict[str, Any] = {k: str(details.get(k) or "") for k in PERSON_KEYS}
    out["category"] = str(details.get("category") or "")
    out["relation"] = str(details.get("relation") or "")
    fields = {
        "political_status": details.get("political_status") or "",
        "enlistment_date": details.get("enlistment_date") or "",
        "discharge_date": details.get("discharge_date") or "",
        "rank_class": details.get("rank_class") or "",
        "service_unit": details.get("service_unit") or "",
        "service_number": details.get("service_number") or "",
        "household_registration": details.get("household_registration") or "",
    }
    out.update({k: v for k, v in fields.items() if v})
    return out


def new_draft(
    *,
    record_id: str,
    clerk: str,
    now: dt.datetime,
    category: str,
    details: dict[str, Any] | None = None,
) -> Draft:
    """A new record, from a person of the initial data (``details``) or from scratch."""
    if (category, CURRENT_VERSION) not in FORMS:
        raise WorkflowError("category", f"类别“{category}”不存在，请从列表中选择")
    initial = initial_values(details) if details else {}
    form = current_form(category)
    return Draft(
        record_id=record_id,
        category=category,
        relation=initial.get("relation", "") if form.relation_required else "",
        person={k: initial.get(k, "") for k in PERSON_KEYS} if initial else {"ethnicity": "01"},
        fields={k: v for k, v in initial.items() if k in form.by_key},
        initial=initial,
        created_by=clerk,
        created_at=now,
        updated_at=now,
        audit=[AuditEntry(at=now, clerk=clerk, action="edited", note="新建记录")],
    )


def correction_draft(
    *,
    record_id: str,
    clerk: str,
    now: dt.datetime,
    values: dict[str, Any],
    note: str,
    corrects: str = "",
    task_id: str = "",
) -> Draft:
    """A new record that corrects an earlier one, from the earlier values (``person``,
    ``category``, ``relation``, ``fields``): they are also its baseline, so the second clerk's
    复核 shows exactly what the correction changed. ``note`` is what the centre said."""
    category = str(values.get("category") or "")
    if (category, CURRENT_VERSION) not in FORMS:
        category = "retired_soldier"
    form = current_form(category)
    raw_person = values.get("person") if isinstance(values.get("person"), dict) else {}
    person = {k: str((raw_person or {}).get(k) or "") for k in PERSON_KEYS}
    person["ethnicity"] = person["ethnicity"] or "01"
    raw_fields = values.get("fields") if isinstance(values.get("fields"), dict) else {}
    fields = {
        # As the form holds what was typed (text, lists of text): a sealed 86 becomes "86", or
        # an unchanged number would show as changed in 复核.
        k: [str(x) for x in v] if isinstance(v, list) else str(v)
        for k, v in (raw_fields or {}).items()
        if k in form.by_key and isinstance(v, str | int | float | list)
    }
    relation = str(values.get("relation") or "") if form.relation_required else ""
    baseline = {**person, "category": category, "relation": relation, **fields}
    what = "更正退回的记录" if corrects else "处理中心任务"
    return Draft(
        record_id=record_id,
        category=category,
        relation=relation,
        person=person,
        fields=fields,
        initial=baseline,
        corrects=corrects,
        task_id=task_id,
        task_note=note[:1000],
        created_by=clerk,
        created_at=now,
        updated_at=now,
        audit=[
            AuditEntry(
                at=now,
                clerk=clerk,
                action="edited",
                note=f"{what} {corrects or task_id}：{note}"[:500],
            )
        ],
    )


def edit(
    draft: Draft,
    *,
    clerk: str,
    now: dt.datetime,
    person: dict[str, str] | None = None,
    category: str | None = None,
    relation: str | None = None,
    fields: dict[str, Any] | None = None,
    card: dict[str, str] | None = None,
    photo_jpeg: bytes | None = None,
    photo_reasons: list[str] | None = None,
    note: str = "",
) -> Draft:
    """Change what a clerk typed (or what the card and camera gave); audited field by field."""
    transition(draft, "edit")
    before = draft.current_values()
    update: dict[str, Any] = {"updated_at": now}
    if category is not None and category != draft.category:
        if (category, CURRENT_VERSION) not in FORMS:
            raise WorkflowError("category", f"类别“{category}”不存在，请从列表中选择")
        update["category"] = category
    new_form = current_form(update.get("category", draft.category))
    if person is not None:
        update["person"] = {k: str(person.get(k, "")).strip() for k in PERSON_KEYS}
    if relation is not None:
        update["relation"] = relation.strip()
    if not new_form.relation_required:
        update["relation"] = ""
    if fields is not None:
        update["fields"] = {k: v for k, v in fields.items() if k in new_form.by_key}
    elif "category" in update:
        update["fields"] = {k: v for k, v in draft.fields.items() if k in new_form.by_key}
    if card is not None:
        update["card"] = card
    if photo_jpeg is not None:
        update["photo_jpeg"] = base64.b64encode(photo_jpeg).decode()
        update["photo_reasons"] = photo_reasons or []
    changed = draft.model_copy(update=update)
    changes = _diff(before, changed.current_values())
    if photo_jpeg is not None:
        changes["photo"] = (bool(draft.photo_jpeg), True)
    if changes or note:
        changed.audit = [
            *draft.audit,
            AuditEntry(at=now, clerk=clerk, action="edited", changes=changes, note=note),
        ]
    return changed


def withhold_classified(
    draft: Draft, values: dict[str, Any]
) -> tuple[dict[str, Any], list[Problem]]:
    """What a clerk typed (``category``, ``relation``, ``person``, ``fields``) with every value
    that carries a classified designation (S-03) put back to the draft's earlier value, and the
    refusals to show. Runs on the typed text itself, before anything is stored, whatever state
    the rest of the draft is in: such text never reaches the disk."""
    form = current_form(str(values.get("category") or draft.category))
    labels = {f.key: f.label for f in form.fields}
    refused: list[Problem] = []

    def finding(key: str, label: str, value: object) -> bool:
        texts = value if isinstance(value, list | tuple) else [value]
        for text in texts:
            if isinstance(text, str) and (hit := find_designation(text, label)) is not None:
                refused.append(Problem(key, "classified", hit.message))
                return True
        return False

    person = dict(values.get("person", {}))
    for key, value in list(person.items()):
        if finding(key, PERSON_LABELS.get(key) or str(key), value):
            person[key] = draft.person.get(key, "")
    fields = dict(values.get("fields", {}))
    for key, value in list(fields.items()):
        if finding(key, labels.get(key) or str(key), value):
            if key in draft.fields:
                fields[key] = draft.fields[key]
            else:
                del fields[key]
    relation = values.get("relation", "")
    if finding("relation", "与军人关系", relation):
        relation = draft.relation or ""
    return {**values, "person": person, "fields": fields, "relation": relation}, refused


def check(draft: Draft, today: dt.date) -> Validated:
    """Every problem of the draft as it stands, the person's included (the ID number judged as
    of ``today``)."""
    facts, person_issues = _person_facts(draft)
    if facts is None:
        return Validated(values={}, problems=tuple(person_issues))
    checked = validate_fields(
        draft.form, draft.fields, person=facts, relation=draft.relation or None, today=today
    )
    return Validated(checked.values, (*person_issues, *checked.problems))


def _person_facts(draft: Draft) -> tuple[PersonFacts | None, list[Problem]]:
    """The person as facts the form's rules check against, or the problems that stop there
    being any; the ID number itself is checked by ``validate_fields``."""
    p = draft.person
    problems: list[Problem] = []
    for key in PERSON_KEYS:
        if not p.get(key):
            problems.append(Problem(key, "required", f"“{PERSON_LABELS[key]}”必须填写"))
    if p.get("sex") and p["sex"] not in ("1", "2"):
        problems.append(Problem("sex", "code", "“性别”请选择 男 或 女"))
    if p.get("ethnicity") and p["ethnicity"] not in ETHNICITIES:
        problems.append(Problem("ethnicity", "code", "“民族”请从列表中选择"))
    try:
        birth = dt.date.fromisoformat(p.get("birth_date", ""))
    except ValueError:
        if p.get("birth_date"):
            problems.append(Problem("birth_date", "type", "“出生日期”应写成 YYYY-MM-DD"))
        return None, problems
    if problems:
        return None, problems
    return PersonFacts(p["id_number"].strip().upper(), p["sex"], birth), []


def changes_against_initial(draft: Draft) -> dict[str, tuple[Any, Any]]:
    """What the clerk changed or added against the initial data (empty for a new person)."""
    if not draft.initial:
        return {}
    return _diff(draft.initial, draft.current_values())


def submit(draft: Draft, *, clerk: str, now: dt.datetime) -> Draft:
    """Entry done: hand the record to a second clerk. Refused while any problem remains."""
    transition(draft, "submit")
    problems = check(draft, now.date()).problems
    if problems:
        raise WorkflowError("invalid", f"还有 {len(problems)} 处需要修改：{problems[0].message}")
    if not draft.photo_jpeg:
        raise WorkflowError("photo", "请先为本人拍摄近期免冠照片")
    entry = AuditEntry(
        at=now, clerk=clerk, action="entered", changes=changes_against_initial(draft)
    )
    return draft.model_copy(
        update={
            "state": "entered",
            "entered_by": clerk,
            "updated_at": now,
            "review_note": "",
            "audit": [*draft.audit, entry],
        }
    )


def review(draft: Draft, *, clerk: str, now: dt.datetime, approve: bool, note: str = "") -> Draft:
    """The second clerk's verdict (S-07); the clerk who entered the record may not review it."""
    nxt = transition(draft, "check" if approve else "send_back")
    if clerk == draft.entered_by:
        raise WorkflowError("same_clerk", "不能复核自己录入的记录：请由另一名工作人员登录后复核")
    if not approve and not note.strip():
        raise WorkflowError("note", "退回时请写明需要修改的内容")
    entry = AuditEntry(
        at=now, clerk=clerk, action="reviewed" if approve else "returned", note=note.strip()
    )
    return draft.model_copy(
        update={
            "state": nxt,
            "reviewed_by": clerk if approve else "",
            "review_note": "" if approve else note.strip(),
            "updated_at": now,
            "audit": [*draft.audit, entry],
        }
    )
