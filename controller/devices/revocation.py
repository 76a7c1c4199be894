"""Revocation (S-08, S-13): once the centre revokes a device, nothing it holds works any more.

Three parties honour it, each from the one fact kept in the database (``devices.revoked_at``):

- the controller's data port: ``DeviceGate`` looks the certificate up on every call and refuses
  uploads from a revoked device; ingest refuses records from it even on a stream opened before;
- the MQTT broker: Mosquitto checks client certificates against ``pki/crl.pem`` (``crlfile``),
  one CRL per CA in the trust bundle. ``write_crl`` rewrites it at once when an admin revokes,
  and every running controller rewrites it when it sees the revoked set change
  (``CrlPublisher``), so several replicas and the CLI agree. Mosquitto reads the file when it
  starts and when it gets SIGHUP (``--broker-pid-file`` makes the controller send that). The
  CRL refuses new connections only; with ``broker_dynamic_security`` the publisher also bans
  each revoked device in the broker's dynamic-security plugin, which closes the session it
  already has (``controller/devices/broker_bans.py``);
- the device: ``Health.revoked`` makes the daemon's licence guard refuse collection for good.

Revoking changes nothing else: records already stored stay stored, and a replaced device's
unacknowledged records can still reach the centre through its successor
(``controller/devices/replacement.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiomqtt
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Device, DeviceEvent
from controller.devices.broker_bans import BrokerBans
from controller.devices.pki_store import ControllerPki
from controller.fleet.commands import issue_command
from muster.clock import Clock
from muster.crypto import write_public_file
from muster.crypto.pki import build_crl, issued_by, load_certificate
from muster.errors import ConfigError, ConflictError, NotFoundError

log = structlog.get_logger(__name__)

MAX_REASON = 200


class UnknownDevice(NotFoundError):
    """No device has this id."""


class AlreadyRevoked(ConflictError):
    """The device was revoked before; the first revocation stands."""


@dataclass(frozen=True, slots=True)
class Revoked:
    device_id: str
    township_code: str
    certificate_serial: str
    at: datetime
    reason: str


def revoke_device(
    sessions: sessionmaker[Session], device_id: str, *, reason: str, by: str, now: datetime
) -> Revoked:
    """Mark a device revoked. Unknown or already revoked devices are refused, changing nothing."""
    reason = reason.strip()
    if not reason:
        raise ConfigError("请写明吊销原因 (give a reason: --reason TEXT)")
    if len(reason) > MAX_REASON:
        raise ConfigError(f"吊销原因过长，最多 {MAX_REASON} 字 (reason longer than {MAX_REASON})")
    with sessions.begin() as session:
        device = session.get(Device, device_id, with_for_update=True)
        if device is None:
            raise UnknownDevice(
                f"没有编号为 {device_id} 的设备 (no such device); 设备编号见管理页面或 "
                "GET /api/v1/devices"
            )
        if device.revoked_at is not None:
            raise AlreadyRevoked(
                f"设备 {device_id} 已于 {device.revoked_at:%Y-%m-%d %H:%M} UTC 被吊销"
                f"（{device.revoked_reason}）(already revoked)"
            )
        device.revoked_at = now
        device.revoked_reason = reason
        device.collection_allowed = False
        # Tell the device at once over MQTT as well; Health tells it at the latest next contact.
        issue_command(session, device_id, "revoke", {"reason": reason}, now=now, issued_by=by)
        session.add(
            DeviceEvent(
                device_id=device_id,
                at=now,
                kind="REVOKED",
                message=f"设备已被吊销：{reason}",
                details={"by": by},
            )
        )
        return Revoked(device_id, device.township_code, device.certificate_serial, now, reason)


def _revoked_certificates(session: Session) -> list[tuple[str, datetime]]:
    return [
        (pem, at)
        for pem, at in session.execute(
            select(Device.certificate_pem, Device.revoked_at).where(Device.revoked_at.is_not(None))
        )
        if at is not None
    ]


def crl_pem(sessions: sessionmaker[Session], pki: ControllerPki, *, now: datetime) -> bytes:
    """One CRL per CA of the trust bundle, each listing the revoked certificates it issued."""
    with sessions() as session:
        revoked = _revoked_certificates(session)
    by_ca: list[list[tuple[int, datetime]]] = [[] for _ in pki.authorities]
    for pem, at in revoked:
        cert = load_certificate(pem.encode())
        for index, (_, authority) in enumerate(pki.authorities):
            if issued_by(cert, authority):
                by_ca[index].append((cert.serial_number, at))
                break
    return b"".join(
        build_crl(key, cert, entries, now=now)
        for (key, cert), entries in zip(pki.authorities, by_ca, strict=True)
    )


def write_crl(sessions: sessionmaker[Session], pki: ControllerPki, *, now: datetime) -> Path:
    write_public_file(pki.crl_path, crl_pem(sessions, pki, now=now))
    return pki.crl_path


def signal_broker(pid_file: Path | None) -> bool:
    """Ask a local Mosquitto to re-read its CRL (SIGHUP). False when there is nothing to signal."""
    if pid_file is None:
        return False
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        log.warning("broker not signalled", pid_file=str(pid_file), error=str(exc))
        return False
    return True


class CrlPublisher:
    """Keeps ``crl.pem`` in step with the database on every controller replica."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        pki: ControllerPki,
        *,
        broker_pid_file: Path | None = None,
        every_s: float = 10.0,
        clock: Clock,
        bans: BrokerBans | None = None,
    ) -> None:
        self._sessions = sessions
        self._pki = pki
        self._pid_file = broker_pid_file
        self._every = every_s
        self._clock = clock
        self._published = ""
        self._bans = bans
        # Devices the broker confirmed banned; a restarted controller sends them all again
        # (each ban is harmless twice), so a ban lost with a broker's state comes back.
        self._banned: set[str] = set()

    def _state(self) -> str:
        with self._sessions() as session:
            serials = session.scalars(
                select(Device.certificate_serial).where(Device.revoked_at.is_not(None))
            ).all()
        return hashlib.sha256(",".join(sorted(serials)).encode()).hexdigest()

    def publish_if_changed(self) -> bool:
        state = self._state()
        if state == self._published and self._pki.crl_path.exists():
            return False
        write_crl(self._sessions, self._pki, now=self._clock.now())
        self._published = state
        signal_broker(self._pid_file)
        log.info("CRL published", path=str(self._pki.crl_path))
        return True

    async def ban_revoked(self) -> set[str]:
        """Ban at the broker every revoked device not confirmed banned yet (after the CRL, so
        its reconnect is refused there too); return the newly confirmed. A broker that cannot
        be reached or does not answer is logged and tried again on the next round."""
        if self._bans is None:
            return set()
        with self._sessions() as session:
            revoked = set(session.scalars(select(Device.id).where(Device.revoked_at.is_not(None))))
        pending = revoked - self._banned
        if not pending:
            return set()
        try:
            confirmed = await self._bans.ban(pending)
        except (aiomqtt.MqttError, TimeoutError) as exc:
            log.warning(
                "revoked devices not banned at the broker", devices=len(pending), error=str(exc)
            )
            return set()
        self._banned |= confirmed
        if confirmed:
            log.info("revoked devices banned at the broker", devices=sorted(confirmed))
        return confirmed

    async def run(self) -> None:
        """Publish whenever the revoked set changed, and ban at the broker, every ``every_s``
        of the clock. A failure (a database hiccup) ends the run; the controller's supervisor
        restarts it."""
        while True:
            await asyncio.to_thread(self.publish_if_changed)
            await self.ban_revoked()
            await self._clock.sleep(self._every)
