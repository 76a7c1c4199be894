"""The licence guard (S-06): may this device collect right now? Checked at start, every hour and
before every seal. A refusal never stops the daemon; it keeps reporting and says why.

What the guard keeps, it keeps twice (``IdentityStore.ledger`` and a file), so deleting one copy
turns nothing off:

- the revoked marker: revoked if either copy says so; the missing copy is written again;
- the clock's high-water mark: the latest of the file, the ledger and the newest record sealed
  in the outbox; a clock far behind it is a rollback, even with both copies deleted, as long
  as the outbox shows a later time;
- the licence authority key: licences are checked against the key pinned at enrolment, not the
  one in the writable ``enrolment.json``; a different one there is ``tampered`` (renewal from
  the controller over mutual TLS repairs it).

Honestly: without a TPM this is evidence, not a lock. Root on the device can delete both copies
and an empty outbox, or patch this code. The real control is at the centre, which refuses
uploads from revoked or expired devices whatever the device believes (controller/records/ingest.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge.fingerprint import hashed_fingerprint, raw_fingerprint
from edge.identity import IdentityStore
from muster.clock import Clock
from muster.crypto import licence_public_from_bytes, write_public_file
from muster.errors import LicenceError
from muster.licence import REASONS, check_licence
from muster.profiles import FirmwareProfile

__all__ = ["ROLLBACK_TOLERANCE", "LicenceGuard", "Verdict", "required_features"]

# Clocks drift and NTP steps them back a little; more than this is a rollback.
ROLLBACK_TOLERANCE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str  # "" when allowed
    message: str
    days_left: int


def required_features(profile: FirmwareProfile) -> tuple[str, ...]:
    """A device bought on the open market collects only under the paid feature (S-06)."""
    return ("generic-device",) if profile.kind == "generic" else ()


class LicenceGuard:
    def __init__(
        self,
        store: IdentityStore,
        *,
        simulated_seed: str | None,
        clock: Clock,
        required_features: tuple[str, ...] = (),
    ) -> None:
        self._store = store
        self._seed = simulated_seed
        self._required = required_features
        self._clock = clock
        self.verdict = Verdict(False, "missing", REASONS["missing"], 0)

    @property
    def _revoked_path(self) -> Path:
        return self._store.directory / "revoked"

    @property
    def _high_water_path(self) -> Path:
        return self._store.directory / "clock.hwm"

    def mark_revoked(self) -> None:
        write_public_file(self._revoked_path, b"revoked by the controller\n")
        self._store.ledger.put("revoked", "revoked by the controller")
        self.check()

    def _revoked(self) -> bool:
        """Revoked when either copy says so; a copy removed alone is written again."""
        in_file = self._revoked_path.exists()
        in_ledger = self._store.ledger.get("revoked") is not None
        if in_file != in_ledger:
            if in_file:
                self._store.ledger.put("revoked", "restored from the revoked file")
            else:
                write_public_file(self._revoked_path, b"revoked by the controller (restored)\n")
        return in_file or in_ledger

    def _outbox_latest(self) -> datetime | None:
        """The newest seal time in the outbox: evidence of how late the clock has been."""
        path = self._store.state_dir / "outbox.sqlite3"
        if not path.exists():
            return None
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                (latest,) = db.execute("SELECT max(sealed_at) FROM records").fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return None
        return None if latest is None else datetime.fromtimestamp(float(latest), UTC)

    def _clock_rolled_back(self, now: datetime) -> bool:
        """Keep the latest time ever seen, twice; a clock far behind it was turned back."""
        marks: list[datetime] = []
        try:
            in_file: str | None = self._high_water_path.read_text().strip()
        except FileNotFoundError:
            in_file = None
        kept = self._store.ledger.get("high_water")
        for copy in (in_file, kept):
            if copy is not None:
                with contextlib.suppress(ValueError):
                    marks.append(datetime.fromisoformat(copy))
        if (latest := self._outbox_latest()) is not None:
            marks.append(latest)
        high = max(marks, default=now)
        if now + ROLLBACK_TOLERANCE < high:
            return True
        mark = max(now, high).isoformat()
        if kept != mark:
            self._store.ledger.put("high_water", mark)
        if in_file != mark:
            write_public_file(self._high_water_path, mark.encode())
        return False

    def _anchor(self) -> str:
        """The pinned licence authority key; ``tampered`` when enrolment.json says otherwise."""
        pinned = self._store.pinned_authority_key()
        if self._store.enrolment().licence_authority_key != pinned:
            raise LicenceError(
                "tampered",
                "本机登记的授权根密钥与注册时固定的不符（enrolment.json 被改动），不能采集。"
                "设备联网后将向中心重新申请授权。",
            )
        return pinned

    def current_fingerprint(self) -> dict[str, str]:
        """This machine's fingerprint now, hashed with the salt chosen at enrolment."""
        salt = bytes.fromhex(self._store.enrolment().fingerprint_salt)
        return hashed_fingerprint(raw_fingerprint(self._seed), salt)

    def check(self) -> Verdict:
        now = self._clock.now()
        enrolment = self._store.enrolment()
        try:
            if self._clock_rolled_back(now):
                raise LicenceError("clock_rollback", REASONS["clock_rollback"])
            revoked = self._revoked()
            anchor = self._anchor()
            licence = check_licence(
                self._store.licence(),
                authority=licence_public_from_bytes(bytes.fromhex(anchor)),
                device_id=enrolment.device_id,
                fingerprint=self.current_fingerprint(),
                now=now,
                revoked=revoked,
                required_features=self._required,
            )
        except LicenceError as exc:
            self.verdict = Verdict(False, exc.reason, str(exc), 0)
        else:
            self.verdict = Verdict(True, "", "授权有效", licence.days_left(now))
        return self.verdict
