"""The licence guard (S-06): may this device collect right now? Checked at start, every hour and
before every seal. A refusal never stops the daemon; it keeps reporting and says why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from edge.fingerprint import hashed_fingerprint, raw_fingerprint
from edge.identity import IdentityStore
from muster.clock import Clock
from muster.crypto import licence_public_from_bytes, write_public_file
from muster.errors import LicenceError
from muster.licence import REASONS, check_licence
from muster.profiles import FirmwareProfile

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
        self.check()

    def _clock_rolled_back(self, now: datetime) -> bool:
        """Keep the latest time ever seen on disk; a clock far behind it was turned back."""
        try:
            high = datetime.fromisoformat(self._high_water_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            high = now
        if now + ROLLBACK_TOLERANCE < high:
            return True
        if now > high or not self._high_water_path.exists():
            write_public_file(self._high_water_path, now.isoformat().encode())
        return False

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
            licence = check_licence(
                self._store.licence(),
                authority=licence_public_from_bytes(bytes.fromhex(enrolment.licence_authority_key)),
                device_id=enrolment.device_id,
                fingerprint=self.current_fingerprint(),
                now=now,
                revoked=self._revoked_path.exists(),
                required_features=self._required,
            )
        except LicenceError as exc:
            self.verdict = Verdict(False, exc.reason, str(exc), 0)
        else:
            self.verdict = Verdict(True, "", "授权有效", licence.days_left(now))
        return self.verdict
