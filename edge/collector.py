"""The simulated collection loop of the simulator profile: what a township's clerks would produce,
at the profile's rate, through the same sealing path as the console."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from edge.sealer import Sealer
from muster.errors import LicenceError, StorageError
from muster.records import Person, RecordPayload
from muster.synthetic import person

log = structlog.get_logger(__name__)

FORM_VERSION = "1"


def simulated_record(rng: random.Random, township_code: str, now: datetime) -> RecordPayload:
    p = person(rng, township_code[:6])
    return RecordPayload(
        record_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        category=p.category,
        form_version=FORM_VERSION,
        township_code=township_code,
        person=Person(name=p.name, id_number=p.id_number, sex=p.sex, birth_date=p.birth_date),
        fields={"phone": f"1{rng.randrange(3, 9)}{rng.randrange(10**9):09d}", "main_requests": ""},
        collected_at=now,
        entered_by="clerk-a",
        reviewed_by="clerk-b",
        relation=p.relation,
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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sealer = sealer
        self._township = township_code
        self._rate = records_per_minute
        self._on_sealed = on_sealed
        self._rng = rng or random.Random()
        self._clock = clock
        self.refusal = ""

    async def run(self) -> None:
        if self._rate <= 0:
            return
        mean_gap = 60.0 / self._rate
        while True:
            await asyncio.sleep(self._rng.expovariate(1.0 / mean_gap))
            record = simulated_record(self._rng, self._township, self._clock())
            try:
                await asyncio.to_thread(self._sealer.seal, record)
            except LicenceError as exc:
                if self.refusal != exc.reason:
                    log.warning("collection refused", reason=exc.reason, message=str(exc))
                self.refusal = exc.reason
                continue
            except StorageError as exc:
                log.error("record not saved", error=str(exc))
                continue
            self.refusal = ""
            self._on_sealed()
