"""MQTT topic names, in one place: ``muster/v1/dev/{device_id}/{kind}``."""

from __future__ import annotations

from typing import Literal

__all__ = ["KINDS", "PREFIX", "QOS", "Kind", "parse", "topic", "wildcard"]

PREFIX = "muster/v1/dev"
Kind = Literal["status", "telemetry", "event", "cmd", "ack"]
KINDS: tuple[Kind, ...] = ("status", "telemetry", "event", "cmd", "ack")

# The QoS a device publishes each kind with. A heartbeat is superseded by the next one (its
# counters are totals, not increments), so losing one costs nothing and QoS 0 spares the broker
# keeping it: on a NATS cluster a QoS 1 message is a replicated JetStream write, which held the
# 3-node cluster on two cores to about 1,000 heartbeats/s, under the 1,667/s of 100,000 devices at
# 60 s. Statuses (retained, the last will), events and acks must arrive: QoS 1.
QOS: dict[Kind, int] = {"status": 1, "telemetry": 0, "event": 1, "cmd": 1, "ack": 1}


def topic(device_id: str, kind: Kind) -> str:
    return f"{PREFIX}/{device_id}/{kind}"


def wildcard(kind: Kind, shared_group: str = "") -> str:
    """Every device's ``kind`` topic; with a group, an MQTT shared subscription so that several
    controller processes split the messages between them."""
    base = f"{PREFIX}/+/{kind}"
    return f"$share/{shared_group}/{base}" if shared_group else base


def parse(topic_name: str) -> tuple[str, str] | None:
    """(device id, kind) of a device topic, or None for anything else."""
    parts = topic_name.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != PREFIX or parts[4] not in KINDS:
        return None
    return parts[3], parts[4]
