"""The NATS intake's rules without a cluster (tests/integration/test_telemetry_nats.py runs it on
one): which subjects are device topics, a missing server list refused with what to set, and
acknowledgements held until the batch holding their messages is in the database."""

from __future__ import annotations

from datetime import UTC, datetime

import nats.errors
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import DeviceEvent
from controller.demo.simulated_fleet import register_simulated
from controller.fleet.telemetry_consumer import TelemetryConsumer
from controller.fleet.telemetry_nats import NatsTelemetryIntake, parse_subject, subject_wildcard
from controller.fleet.telemetry_store import DeviceStateStore, Message
from controller.settings import ControllerSettings
from muster.clock import VirtualClock
from muster.errors import ConfigError
from muster.fleet_layout import simulated_device
from muster.v1 import device_pb2

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_subjects_are_nats_s_mapping_of_the_device_topics() -> None:
    assert subject_wildcard("telemetry") == "muster.v1.dev.*.telemetry"
    assert subject_wildcard("event") == "muster.v1.dev.*.event"
    assert parse_subject("muster.v1.dev.220781010000-SIM000003.ack") == (
        "220781010000-SIM000003",
        "ack",
    )


@pytest.mark.parametrize(
    "subject",
    [
        "muster.v1.dev.a.b.telemetry",  # an id with a dot (MQTT a/b would be a.b): not one id
        "muster.v1.dev.x/y.telemetry",  # a '/' is no MQTT separator here
        "muster.v1.dev.x.nonsense",  # not a kind
        "muster.v2.dev.x.telemetry",
        "muster.v1.dev..telemetry",
        "$MQTT.sub.abc",
        "",
    ],
)
def test_anything_but_a_device_subject_is_refused(subject: str) -> None:
    assert parse_subject(subject) is None


def test_nats_transport_without_servers_says_what_to_set(
    sessions: sessionmaker[Session],
) -> None:
    clock = VirtualClock(T0)
    settings = ControllerSettings(telemetry_transport="nats")
    consumer = TelemetryConsumer(settings, DeviceStateStore(sessions, clock), clock)
    with pytest.raises(ConfigError, match="MUSTER_CONTROLLER_NATS_URLS"):
        NatsTelemetryIntake(settings, consumer, None)


def test_an_unknown_transport_is_refused() -> None:
    with pytest.raises(ValueError, match="telemetry_transport"):
        ControllerSettings(telemetry_transport="kafka")  # type: ignore[arg-type]


class FailingStore(DeviceStateStore):
    """The real store, failing its first ``failures`` batches (the database away)."""

    def __init__(self, sessions: sessionmaker[Session], clock: VirtualClock, failures: int):
        super().__init__(sessions, clock)
        self.failures = failures

    def apply(self, batch: list[Message]) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError("database away")
        return super().apply(batch)


async def test_acks_wait_for_the_batch_that_holds_their_messages(
    sessions: sessionmaker[Session],
) -> None:
    """A callback registered after a message runs only once that message's batch committed: not
    after a failed flush, once after the retry that stores it, and never for later ones."""
    register_simulated(sessions, 1, now=T0)
    device = simulated_device(0).device_id
    clock = VirtualClock(T0, monotonic_start=0.0)
    consumer = TelemetryConsumer(
        ControllerSettings(), FailingStore(sessions, clock, failures=1), clock
    )
    acked: list[str] = []

    async def ack(name: str) -> None:
        acked.append(name)

    payload = device_pb2.Event(device_id=device, message="first").SerializeToString()
    assert consumer.receive(device, "event", payload)
    consumer.after_flush(lambda: ack("first"))

    assert not await consumer.flush()  # the database is away: kept, not acknowledged
    assert acked == []
    with sessions() as session:
        assert session.scalars(select(DeviceEvent.message)).all() == []

    assert await consumer.flush()
    assert acked == ["first"]
    with sessions() as session:
        assert session.scalars(select(DeviceEvent.message)).all() == ["first"]

    assert await consumer.flush()  # nothing new: the first is not acknowledged again
    assert acked == ["first"]
    assert consumer.messages_handled == consumer.messages_received == 1


class _Pull:
    """What ``pull.fetch`` of nats-py 2.x does when the wait runs out between its no-wait probe
    and its lingering request (nats/js/client.py ``_fetch_n``): a bare asyncio.TimeoutError, not
    nats' own. Seen in the soak on a busy controller: the intake took it for a failure, dropped
    its queue subscriptions and lost heartbeats while the supervisor backed off."""

    def __init__(self, error: BaseException) -> None:
        self.error, self.calls = error, 0

    async def fetch(self, batch: int, timeout: float) -> list[object]:  # noqa: ASYNC109
        self.calls += 1
        raise self.error


@pytest.mark.parametrize("error", [TimeoutError(), nats.errors.TimeoutError()])
async def test_a_fetch_that_times_out_either_way_is_nothing_yet(
    sessions: sessionmaker[Session], error: BaseException
) -> None:
    clock = VirtualClock(T0)
    settings = ControllerSettings(telemetry_transport="nats", nats_urls=["tls://n1:4222"])
    consumer = TelemetryConsumer(settings, DeviceStateStore(sessions, clock), clock)
    intake = NatsTelemetryIntake(settings, consumer, None)
    pull = _Pull(error)
    await intake._fetch(pull)
    await intake._fetch(pull)
    assert pull.calls == 2 and intake.taken == {"core": 0, "stream": 0}
