"""A revoked device's live MQTT session is closed, against real Mosquitto 2.0 with its
dynamic-security plugin, the controller's CRL and the production ACL (issue 15, item 3).

Before: the CRL (re-read on SIGHUP) refused only new connections; the session a device had
opened before its revocation stayed up until the broker restarted. Now the controller bans the
device in the broker's dynamic-security plugin, which closes that session at once; the CRL
refuses its reconnect, and even without a CRL (a broker not yet reloaded) a reconnected session
may neither publish nor subscribe."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from controller.db import make_engine, migrate, session_factory
from controller.devices.broker_bans import CONTROL_TOPIC, BrokerBans, ban_commands
from controller.devices.enrolment import publish_upload_keys
from controller.devices.pki_store import (
    CONTROLLER_MQTT_IDENTITY,
    ControllerPki,
    ensure_controller_pki,
)
from controller.devices.revocation import CrlPublisher, revoke_device, write_crl
from muster import topics
from muster.clock import VirtualClock
from muster.crypto import generate_device_key, write_private_key, write_public_file
from muster.crypto.pki import certificate_pem, load_certificate
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.secure_broker import SecureBrokerFactory
from tests.integration.test_broker_acl import Peer
from tests.unit.test_enrollment import enrol_directly


@dataclass
class Fleet:
    broker: MosquittoBroker
    pki: ControllerPki
    sessions: sessionmaker[Session]
    clock: VirtualClock
    pid_file: Path
    certs: dict[str, tuple[Path, Path]]
    ids: list[str]  # [the device to revoke, the one that stays]

    def peer(self, device_id: str, name: str = "") -> Peer:
        return Peer(self.broker, self.pki, *self.certs[device_id], name or device_id)

    def controller(self) -> Peer:
        peer = Peer(
            self.broker,
            self.pki,
            self.pki.client_cert_path,
            self.pki.client_key_path,
            f"{CONTROLLER_MQTT_IDENTITY}-test",
            self.broker.centre_port,
        )
        peer.subscribe(f"{topics.PREFIX}/+/#")
        time.sleep(0.3)
        return peer

    def publisher(self) -> CrlPublisher:
        return CrlPublisher(
            self.sessions,
            self.pki,
            broker_pid_file=self.pid_file,
            clock=self.clock,
            bans=BrokerBans(self.broker.centre_url, self.pki),
        )


def _fleet(secure_mosquitto: SecureBrokerFactory, tmp_path: Path, *, crl: bool) -> Fleet:
    clock = VirtualClock(datetime.now(UTC).replace(microsecond=0))
    ctl = tmp_path / "ctl"
    pki = ensure_controller_pki(ctl, ["127.0.0.1", "localhost"], now=clock.now())
    url = f"sqlite:///{tmp_path / 'controller.db'}"
    migrate(url)
    sessions = session_factory(make_engine(url))
    with sessions.begin() as session:
        publish_upload_keys(session, pki, clock.now())
    certs: dict[str, tuple[Path, Path]] = {}
    ids = []
    for township in ("370902001000", "370902002000"):
        key = generate_device_key()
        enrolled = enrol_directly(sessions, pki, key, township=township, now=clock.now())
        cert, key_path = tmp_path / f"{township}.crt", tmp_path / f"{township}.key"
        write_private_key(key_path, key)
        write_public_file(cert, certificate_pem(load_certificate(enrolled.certificate_der)))
        certs[enrolled.device_id] = (cert, key_path)
        ids.append(enrolled.device_id)
    write_crl(sessions, pki, now=clock.now())
    broker = secure_mosquitto(ctl, listener_config=f"crlfile {pki.crl_path}" if crl else "")
    assert broker._process is not None
    pid_file = tmp_path / "mosquitto.pid"
    pid_file.write_text(str(broker._process.pid))
    return Fleet(broker, pki, sessions, clock, pid_file, certs, ids)


@pytest.fixture
def fleet(secure_mosquitto: SecureBrokerFactory, tmp_path: Path) -> Iterator[Fleet]:
    world = _fleet(secure_mosquitto, tmp_path, crl=True)
    yield world
    world.sessions.kw["bind"].dispose()


@pytest.fixture
def fleet_without_crl(secure_mosquitto: SecureBrokerFactory, tmp_path: Path) -> Iterator[Fleet]:
    world = _fleet(secure_mosquitto, tmp_path, crl=False)
    yield world
    world.sessions.kw["bind"].dispose()


async def _wait_disconnected(peer: Peer, within_s: float = 10.0) -> bool:
    for _ in range(int(within_s / 0.05)):
        if not peer.client.is_connected():
            return True
        await asyncio.sleep(0.05)
    return False


def _delivered(controller: Peer, topic: str, within_s: float = 2.0) -> bool:
    try:
        controller.wait_for(topic, within_s)
    except AssertionError:
        return False
    return True


async def test_revoking_closes_the_live_session_and_refuses_the_reconnect(fleet: Fleet) -> None:
    """Attack: device A holds its MQTT session open across its revocation. The controller
    revokes it, publishes the CRL and bans A at the broker: A's session is closed, a new
    connection with A's certificate is refused, B (not revoked) stays connected and still
    cannot publish as A."""
    revoked, kept = fleet.ids
    controller = await asyncio.to_thread(fleet.controller)
    a = await asyncio.to_thread(fleet.peer, revoked)
    b = await asyncio.to_thread(fleet.peer, kept)
    try:
        revoke_device(fleet.sessions, revoked, reason="被盗", by="admin", now=fleet.clock.now())
        publisher = fleet.publisher()
        assert await asyncio.to_thread(publisher.publish_if_changed)
        await asyncio.sleep(1)  # SIGHUP: the broker re-reads the CRL
        assert a.client.is_connected(), "the CRL alone closed the session (Mosquitto changed?)"

        assert await publisher.ban_revoked() == {revoked}
        assert await _wait_disconnected(a), "the revoked device's session is still up"
        assert "been disconnected by administrative action" in fleet.broker.log()
        with pytest.raises(AssertionError, match="could not connect"):
            await asyncio.to_thread(fleet.peer, revoked, "again")
        assert await publisher.ban_revoked() == set()  # confirmed once, not sent again

        assert b.client.is_connected()
        await asyncio.to_thread(b.publish, topics.topic(revoked, "telemetry"), b"forged")
        await asyncio.to_thread(b.publish, topics.topic(kept, "telemetry"), b"own")
        assert await asyncio.to_thread(_delivered, controller, topics.topic(kept, "telemetry"))
        assert topics.topic(revoked, "telemetry") not in controller.topics_seen()
    finally:
        for peer in (controller, a, b):
            peer.close()


async def test_a_banned_device_that_reconnects_without_a_crl_can_do_nothing(
    fleet_without_crl: Fleet,
) -> None:
    """Attack: the broker has not re-read the CRL (no crlfile, or a remote broker not yet
    signalled) and the banned device simply reconnects. It gets a session, and every publish
    and subscribe of it is denied; the ban also survives a broker restart."""
    fleet = fleet_without_crl
    revoked, kept = fleet.ids
    controller = await asyncio.to_thread(fleet.controller)
    a = await asyncio.to_thread(fleet.peer, revoked)
    try:
        await asyncio.to_thread(a.publish, topics.topic(revoked, "telemetry"), b"before")
        assert await asyncio.to_thread(_delivered, controller, topics.topic(revoked, "telemetry"))
        revoke_device(fleet.sessions, revoked, reason="丢失", by="admin", now=fleet.clock.now())
        assert await fleet.publisher().ban_revoked() == {revoked}
        assert await _wait_disconnected(a)
        a.close()

        fleet.broker.stop()
        fleet.broker.start()
        controller.close()
        controller = await asyncio.to_thread(fleet.controller)
        again = await asyncio.to_thread(fleet.peer, revoked, "again")
        try:
            again.subscribe(topics.topic(revoked, "cmd"))
            await asyncio.to_thread(again.publish, topics.topic(revoked, "event"), b"after")
            controller.client.publish(topics.topic(revoked, "cmd"), b"cmd", qos=1)
            assert not await asyncio.to_thread(
                _delivered, controller, topics.topic(revoked, "event")
            )
            assert topics.topic(revoked, "cmd") not in again.topics_seen()
        finally:
            again.close()
        b = await asyncio.to_thread(fleet.peer, kept)
        try:
            await asyncio.to_thread(b.publish, topics.topic(kept, "event"), b"fine")
            assert await asyncio.to_thread(_delivered, controller, topics.topic(kept, "event"))
        finally:
            b.close()
    finally:
        controller.close()


async def test_a_device_cannot_ban_another_over_control(fleet: Fleet) -> None:
    """Attack: device B sends the plugin the ban commands for A (and tries to read the
    answers). The broker refuses $CONTROL to every identity but the controller's: A stays
    connected and keeps delivering."""
    victim, attacker = fleet.ids
    controller = await asyncio.to_thread(fleet.controller)
    a = await asyncio.to_thread(fleet.peer, victim)
    b = await asyncio.to_thread(fleet.peer, attacker)
    try:
        b.subscribe(f"{CONTROL_TOPIC}/#")
        commands = {"commands": ban_commands(victim)}
        await asyncio.to_thread(b.publish, CONTROL_TOPIC, json.dumps(commands).encode())
        await asyncio.sleep(1)
        assert a.client.is_connected()
        assert not b.topics_seen()
        assert "disableClient" not in fleet.broker.log()
        await asyncio.to_thread(a.publish, topics.topic(victim, "telemetry"), b"still here")
        assert await asyncio.to_thread(_delivered, controller, topics.topic(victim, "telemetry"))
    finally:
        for peer in (controller, a, b):
            peer.close()


async def test_a_broker_without_the_plugin_is_reported_not_banned(
    mosquitto: MosquittoBroker, fleet: Fleet
) -> None:
    """A controller pointed at a broker without the plugin gets no answer: nothing is counted
    as banned (the next round tries again) and the publisher keeps running."""
    revoke_device(fleet.sessions, fleet.ids[0], reason="丢失", by="admin", now=fleet.clock.now())
    publisher = CrlPublisher(
        fleet.sessions,
        fleet.pki,
        clock=fleet.clock,
        bans=BrokerBans(mosquitto.url, None, timeout_s=1.0),
    )
    assert await publisher.ban_revoked() == set()
    assert await fleet.publisher().ban_revoked() == {fleet.ids[0]}
