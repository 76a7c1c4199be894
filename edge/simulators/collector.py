"""The simulated collection loop of the simulator profile: what a township's clerks would produce,
at the profile's rate, through the same sealing path as the console."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

import structlog

from edge.card_reads import CardHandoff, IdentityRead
from edge.sealer import Sealer
from muster.clock import Clock
from muster.errors import LicenceError, StorageError
from muster.forms import CURRENT_VERSION, current_form
from muster.forms.codelists import RELATIONS
from muster.forms.samples import sample_fields
from muster.records import FAMILY_CATEGORIES, AuditEntry, Category, Person, RecordPayload
from muster.synthetic import CATEGORY_WEIGHTS, person

log = structlog.get_logger(__name__)

FORM_VERSION = CURRENT_VERSION
# Draws from the slice before a clerk is taken to meet someone the centre does not know yet.
_PICKS = 20


def _filled(
    rng: random.Random, category: Category, birth_date: date, now: datetime
) -> dict[str, Any]:
    return sample_fields(current_form(category.value), rng, birth_date, now.date())


def _audit(now: datetime) -> tuple[AuditEntry, ...]:
    return (
        AuditEntry(at=now, clerk="clerk-a", action="entered"),
        AuditEntry(at=now, clerk="clerk-b", action="reviewed"),
    )


def record_from_card(
    rng: random.Random, township_code: str, card: IdentityRead, now: datetime
) -> RecordPayload:
    """What a clerk starts from after reading a visitor's card: the card's identity, a category."""
    if card.birth_date is None:
        raise ValueError("a card read without a birth date is not a valid resident's")
    category = rng.choices(list(CATEGORY_WEIGHTS), weights=list(CATEGORY_WEIGHTS.values()))[0]
    return RecordPayload(
        record_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        category=category,
        form_version=FORM_VERSION,
        township_code=township_code,
        person=Person(
            name=card.name,
            id_number=card.id_number,
            sex=card.sex,
            birth_date=card.birth_date,
            ethnicity=card.ethnicity or "01",
        ),
        fields=_filled(rng, category, card.birth_date, now)
        | ({"address": card.address} if card.address else {}),
        collected_at=now,
        entered_by="clerk-a",
        reviewed_by="clerk-b",
        audit=_audit(now),
        relation=rng.choice(list(RELATIONS)) if category in FAMILY_CATEGORIES else None,
    )


def simulated_record(rng: random.Random, township_code: str, now: datetime) -> RecordPayload:
    p = person(rng, township_code[:6])
    return RecordPayload(
        record_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        category=p.category,
        form_version=FORM_VERSION,
        township_code=township_code,
        person=Person(name=p.name, id_number=p.id_number, sex=p.sex, birth_date=p.birth_date),
        fields=_filled(rng, p.category, p.birth_date, now),
        collected_at=now,
        entered_by="clerk-a",
        reviewed_by="clerk-b",
        audit=_audit(now),
        relation=p.relation,
    )


def record_from_slice(
    rng: random.Random, township_code: str, details: dict[str, Any], now: datetime
) -> RecordPayload:
    """What a clerk does with the initial data (S-04): finds the person, verifies, completes."""
    category = Category(details["category"])
    birth = date.fromisoformat(details["birth_date"])
    return RecordPayload(
        record_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        category=category,
        form_version=FORM_VERSION,
        township_code=township_code,
        person=Person(
            name=details["name"],
            id_number=details["id_number"],
            sex=details["sex"],
            birth_date=birth,
            ethnicity=details.get("ethnicity") or "01",
        ),
        fields=_filled(rng, category, birth, now),
        collected_at=now,
        entered_by="clerk-a",
        reviewed_by="clerk-b",
        audit=_audit(now),
        relation=details.get("relation") or None,
    )


class SimulatedCollector:
    def __init__(
        self,
        sealer: Sealer,
        township_code: str,
        records_per_minute: float,
        *,
        on_sealed: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
        clock: Clock,
        cards: CardHandoff | None = None,
        initial_data: Callable[[random.Random], dict[str, Any] | None] | None = None,
        find_initial: Callable[[str], dict[str, Any] | None] | None = None,
    ) -> None:
        self._initial_data = initial_data
        self._find_initial = find_initial
        self._sealer = sealer
        self._township = township_code
        self._rate = records_per_minute
        self._on_sealed = on_sealed
        self._rng = rng or random.Random()
        self._clock = clock
        self._cards = cards
        # ID numbers this device has sealed since it started: a clerk does not collect the
        # same person twice (the console shows them as already collected).
        self._collected: set[str] = set()
        self.refusal = ""

    async def _next_record(self, mean_gap: float) -> RecordPayload:
        # With a reader, every record starts from a real card read (resident cards only: the
        # other permits do not carry a resident ID number the forms ask for).
        if self._cards is not None:
            while True:
                read = await self._cards.take()
                if read is None:
                    continue
                if read.id_number in self._collected:
                    log.info("card skipped: already collected on this device")
                    continue
                if read.is_valid_resident(self._clock.today()):
                    record = record_from_card(self._rng, self._township, read, self._clock.now())
                    return await self._complete_from_initial_data(record)
                log.info("card skipped: not a valid resident card", card_type=read.card_type.value)
        await self._clock.sleep(self._rng.expovariate(1.0 / mean_gap))
        # Clerks verify and complete people from the township's initial data; someone the
        # centre does not know yet (S-12: people appear at any time) is typed from scratch.
        if self._initial_data is not None:
            for _ in range(_PICKS):
                details = await asyncio.to_thread(self._initial_data, self._rng)
                if details is None:
                    break
                if details["id_number"] not in self._collected:
                    return record_from_slice(self._rng, self._township, details, self._clock.now())
        return simulated_record(self._rng, self._township, self._clock.now())

    async def _complete_from_initial_data(self, record: RecordPayload) -> RecordPayload:
        """A person the initial data knows: the clerk verifies its category and relation
        instead of choosing them."""
        if self._find_initial is None:
            return record
        details = await asyncio.to_thread(self._find_initial, record.person.id_number)
        if details is None:
            return record
        category = Category(details["category"])
        return record.model_copy(
            update={
                "category": category,
                "relation": details.get("relation") or None,
                "fields": _filled(self._rng, category, record.person.birth_date, self._clock.now())
                | ({"address": record.fields["address"]} if "address" in record.fields else {}),
            }
        )

    async def run(self) -> None:
        if self._rate <= 0 and self._cards is None:
            return
        mean_gap = 60.0 / self._rate if self._rate > 0 else 0.0
        while True:
            record = await self._next_record(mean_gap)
            try:
                await _finish_even_if_cancelled(asyncio.to_thread(self._sealer.seal, record))
            except LicenceError as exc:
                if self.refusal != exc.reason:
                    log.warning("collection refused", reason=exc.reason, message=str(exc))
                self.refusal = exc.reason
                continue
            except StorageError as exc:
                log.error("record not saved", error=str(exc))
                continue
            self.refusal = ""
            self._collected.add(record.person.id_number)
            self._on_sealed()


async def _finish_even_if_cancelled(work: Awaitable[object]) -> None:
    """Await ``work``; when cancelled meanwhile, let it finish first, then stop. A seal runs
    on a worker thread that cancelling cannot stop: without this, a record would land in the
    outbox after the daemon believed collection had ended and drained the outbox."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # Its failure, if any, was the seal's; collection is stopping either way.
        with contextlib.suppress(Exception):
            await task
        raise
