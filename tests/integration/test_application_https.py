"""Deliveries go over HTTPS: to a department whose certificate the sender trusts, delivered;
to one whose certificate it does not trust, not delivered and retried later (a refused
connection is the department's outage, not a reason to drop the delivery)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from controller.applications.departments import add_department
from controller.applications.sender import DeliverySender
from controller.db import make_engine, migrate, session_factory
from controller.db.models import Delivery
from muster.application_wire import new_secret
from muster.clock import VirtualClock
from muster.department_sim import DepartmentScript, SimulatedDepartment, create_department_app
from tests.fixtures.applications import fill_and_submit, serve

pytestmark = [pytest.mark.postgres]

START = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)


def _self_signed(directory: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "department.test")])
    now = dt.datetime.now(dt.UTC)  # the TLS library checks validity against the real clock
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "dept.pem", directory / "dept.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


async def test_delivered_over_https_only_to_a_trusted_department(
    postgres_url: str, tmp_path: Path
) -> None:
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    sessions = session_factory(engine)
    clock = VirtualClock(START)
    cert, key = _self_signed(tmp_path)
    secret = new_secret()
    sim = SimulatedDepartment(secret, "", clock, DepartmentScript(silent=True))
    async with serve(create_department_app(sim), certfile=cert, keyfile=key) as url:
        assert url.startswith("https://")
        with sessions.begin() as s:
            add_department(s, kind="medins", url=f"{url}/deliveries", secret=secret, now=START)
        fill_and_submit(sessions, START, items=("medins",))
        untrusting = DeliverySender(sessions, clock)  # the system's CAs only
        assert await untrusting.pump_once() == 1
        await untrusting.aclose()
        with sessions() as s:
            delivery = s.scalars(select(Delivery)).one()
            assert delivery.state == "pending" and "ConnectError" in delivery.last_error
            assert delivery.next_attempt_at > clock.now()
        assert sim.seen == {}
        clock.advance_now(3600)
        trusting = DeliverySender(
            sessions,
            clock,
            client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=cert)),
        )
        assert await trusting.pump_once() == 1
        await trusting.aclose()
        with sessions() as s:
            delivery = s.scalars(select(Delivery)).one()
            assert delivery.state == "sent" and delivery.attempts == 2
        assert list(sim.seen) == [delivery.id]
    engine.dispose()
