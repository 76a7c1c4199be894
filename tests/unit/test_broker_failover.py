"""The device's broker list and failover order (edge/uplink/brokers.py), on a virtual clock:
first address first, the next one after each failure or loss with the shared backoff, rotating,
the backoff starting over after every accepted connection. The real cluster is in
tests/integration/test_broker_failover.py."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import pytest

from edge.settings import EdgeSettings
from edge.uplink.brokers import BrokerRotation, keep_connected, parse_broker_list
from edge.uplink.telemetry import TelemetryLink
from muster.backoff import Backoff
from muster.clock import VirtualClock
from muster.errors import ConfigError
from muster.mqtt import BrokerAddress
from muster.v1 import device_pb2

NODES = ["mqtts://n1.example:8883", "mqtts://n2.example:8883", "mqtts://n3.example:8883"]


class Refused(Exception):
    pass


def test_a_list_parses_in_order_and_one_url_is_a_list_of_one() -> None:
    assert [a.host for a in parse_broker_list(NODES)] == ["n1.example", "n2.example", "n3.example"]
    assert parse_broker_list("mqtt://127.0.0.1:1883") == (BrokerAddress("127.0.0.1", 1883, False),)
    assert parse_broker_list([" mqtts://h:8883 "]) == (BrokerAddress("h", 8883, True),)


@pytest.mark.parametrize(
    ("urls", "says"),
    [
        ([], "消息服务地址列表为空"),
        (["mqtts://a:8883", "http://b"], "列表第 2 项"),
        (["mqtts://a:8883", ""], "列表第 2 项"),
        (["mqtts://a:99999"], "1 到 65535"),
        (["mqtts://a:port"], "1 到 65535"),
        (["mqtts://a:8883", "mqtts://a:8883"], "重复"),
        (["mqtts://a", "mqtts://a:8883"], "重复"),
        (["mqtts://a:8883", "mqtt://b:1883"], "混用 mqtt:// 和 mqtts://"),
        (["mqtts://a:8883", "mqtts://b:8883\n mqtts://c:8883"], "列表第 2 项"),
    ],
)
def test_a_bad_broker_list_is_refused_naming_the_entry(urls: list[str], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_broker_list(urls)


def test_a_link_built_on_a_bad_list_refuses_before_connecting() -> None:
    clock = VirtualClock(datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match="混用"):
        TelemetryLink(
            "dev-1",
            ["mqtt://a:1883", "mqtts://b:8883"],
            device_pb2.Heartbeat,
            interval_s=5,
            clock=clock,
        )
    link = TelemetryLink("dev-1", NODES, device_pb2.Heartbeat, interval_s=5, clock=clock)
    assert [a.host for a in link.brokers] == ["n1.example", "n2.example", "n3.example"]
    assert link.broker == ("n1.example", 8883)  # the self-test probes the first


def test_the_rotation_tries_the_next_address_after_each_failure_with_the_backoff() -> None:
    addresses = parse_broker_list(NODES)
    rotation = BrokerRotation(addresses, Backoff(maximum=30.0, rng=random.Random(7)))
    same = Backoff(maximum=30.0, rng=random.Random(7))
    first = rotation.next_attempt()
    assert (first.position, first.wait_s) == (0, 0.0)
    seen = [rotation.next_attempt() for _ in range(5)]
    assert [a.position for a in seen] == [1, 2, 0, 1, 2]
    assert [a.wait_s for a in seen] == [same.next_delay() for _ in range(5)]
    rotation.connected()  # accepted: the next loss starts from the initial delay again
    after = rotation.next_attempt()
    assert after.position == 0
    assert 0.25 <= after.wait_s < 0.75


def test_failover_on_a_virtual_clock_follows_the_list_and_the_backoff() -> None:
    """n1 refuses twice over, n2 accepts and is lost after 100 s, n3 accepts and stays: the
    attempts go n1, n2, n3, n1, n2, n3 ... at the times the seeded backoff says."""

    async def scenario() -> list[tuple[float, str, str]]:
        clock = VirtualClock(datetime(2026, 12, 1, tzinfo=UTC), monotonic_start=0.0)
        rotation = BrokerRotation(
            parse_broker_list(NODES), Backoff(maximum=30.0, rng=random.Random("dev-1"))
        )
        log: list[tuple[float, str, str]] = []
        script = {
            "n1.example": ["refuse", "refuse"],
            "n2.example": ["serve:100", "refuse"],
            "n3.example": ["refuse", "serve:forever"],
        }

        async def session(address: BrokerAddress) -> None:
            outcome = script[address.host].pop(0)
            log.append((clock.monotonic(), address.host, outcome))
            if outcome == "refuse":
                raise Refused(address.host)
            rotation.connected()
            if outcome == "serve:forever":
                await asyncio.Event().wait()
            await clock.sleep(float(outcome.split(":")[1]))
            raise Refused(f"{address.host} lost")

        lost: list[str] = []
        task = asyncio.create_task(
            keep_connected(
                rotation,
                clock,
                session,
                retry_on=(Refused,),
                on_lost=lambda broker, error, then: lost.append(
                    f"{broker.host}->{then.address.host}"
                ),
            )
        )
        await clock.advance(1000)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert lost == [
            "n1.example->n2.example",
            "n2.example->n3.example",
            "n3.example->n1.example",
            "n1.example->n2.example",
            "n2.example->n3.example",
        ]
        return log

    log = asyncio.run(scenario())
    # The same seeded backoff, replayed: n1 refused, wait d1, n2 serves 100 s (reset), wait e1
    # for n3 (refused), e2 for n1 (refused), e3 for n2 (refused), e4 for n3, which stays.
    expect = Backoff(maximum=30.0, rng=random.Random("dev-1"))
    d1 = expect.next_delay()
    expect.reset()
    e = [expect.next_delay() for _ in range(4)]
    times = [0.0, d1, d1 + 100 + e[0]]
    times += [times[-1] + e[1], times[-1] + e[1] + e[2], times[-1] + e[1] + e[2] + e[3]]
    assert [host for _t, host, _o in log] == [
        "n1.example",
        "n2.example",
        "n3.example",
        "n1.example",
        "n2.example",
        "n3.example",
    ]
    assert [t for t, _h, _o in log] == pytest.approx(times)
    # Each wait lies in the backoff's jitter band of its nominal delay (0.5, 0.5, 1, 2, 4 s).
    assert 0.25 <= d1 < 0.75 and 0.25 <= e[0] < 0.75 and 2.0 <= e[3] < 6.0


def test_the_settings_take_a_broker_list_from_the_environment_or_a_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert EdgeSettings().brokers == []  # the broker named at enrolment
    monkeypatch.setenv("MUSTER_EDGE_BROKERS", "mqtts://n1:8883, mqtts://n2:8883,")
    assert EdgeSettings().brokers == ["mqtts://n1:8883", "mqtts://n2:8883"]
    monkeypatch.setenv("MUSTER_EDGE_BROKERS", '["mqtts://n1:8883", "mqtts://n3:8883"]')
    assert EdgeSettings().brokers == ["mqtts://n1:8883", "mqtts://n3:8883"]
    monkeypatch.setenv("MUSTER_EDGE_BROKERS", "mqtts://single:8883")
    assert EdgeSettings().brokers == ["mqtts://single:8883"]
    # A flag (click hands a tuple) wins over the environment.
    assert EdgeSettings(brokers=("mqtts://flag:8883",)).brokers == ["mqtts://flag:8883"]  # type: ignore[arg-type]
    monkeypatch.setenv("MUSTER_EDGE_BROKERS", '["mqtts://n1:8883"')
    with pytest.raises(ValueError, match="brokers"):
        EdgeSettings()


def test_a_refused_command_subscription_counts_as_a_failed_attempt() -> None:
    """A NATS node may take the connection and refuse the QoS 1 subscription (SUBACK 0x80) while
    its JetStream settles: the link then tries the next node rather than stay deaf."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from edge.uplink.telemetry import _refused

    assert not _refused([ReasonCode(PacketTypes.SUBACK, identifier=1)])
    assert _refused([ReasonCode(PacketTypes.SUBACK, identifier=0x80)])
    assert not _refused((1,)) and _refused((0x80,))
