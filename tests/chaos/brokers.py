"""The broker side of a chaos run, one of two shapes behind one interface:

* ``MosquittoBroker`` in its production shape (two TLS listeners, client certificates, the
  ACL), replicas sharing the telemetry through ``$share`` (fault target ``broker``);
* the 3-node NATS cluster (tests/fixtures/nats_telemetry.py: MQTT over mutual TLS with the
  per-device rights, the controller's NATS client port), replicas splitting the telemetry through
  the cluster's queue group and JetStream consumer (``telemetry_transport = "nats"``), each
  commanding through a node of its own, and devices told every node at enrolment
  (``--device-broker``), which they fail over along (fault targets ``broker-n1`` ..).

NATS lists every device as a user of its own and, once reloaded with MQTT clients connected,
stops delivering their QoS 1 messages (see the cluster fixture), so the cluster starts after
every device has enrolled and been granted its rights (``starts_after_enrolment``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from controller.devices.pki_store import ensure_controller_pki
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.nats_cluster import NatsNode
from tests.fixtures.nats_telemetry import TelemetryNatsCluster
from tests.fixtures.secure_broker import broker_tls

__all__ = ["ChaosBrokers", "ClusterBrokers", "MosquittoBrokers", "make_brokers"]

SHARED_GROUP = "controllers"
KINDS = ("mosquitto", "nats")


class ChaosBrokers(Protocol):
    starts_after_enrolment: bool

    @property
    def names(self) -> list[str]:
        """The fault targets, one per broker process."""
        ...

    @property
    def device_ports(self) -> list[int]:
        """The MQTT ports a device dials, in the order it tries them."""
        ...

    def start(self, device_ids: list[str]) -> None: ...

    def replica_args(self, number: int) -> tuple[tuple[str, ...], str, dict[str, str]]:
        """Replica ``number``'s (extra flags, MQTT URL, environment)."""
        ...

    def kill(self, name: str) -> None: ...

    def restart(self, name: str) -> None: ...

    def running(self, name: str) -> bool: ...

    def stop(self) -> None: ...


class MosquittoBrokers:
    starts_after_enrolment = False

    def __init__(self, controller_data_dir: Path, workdir: Path) -> None:
        tls = broker_tls(controller_data_dir)
        self.broker = MosquittoBroker(workdir, tls=tls)

    @property
    def names(self) -> list[str]:
        return ["broker"]

    @property
    def device_ports(self) -> list[int]:
        return [self.broker.port]

    def start(self, device_ids: list[str]) -> None:
        self.broker.start()

    def replica_args(self, number: int) -> tuple[tuple[str, ...], str, dict[str, str]]:
        flags = ("--device-mqtt-url", self.broker.url, "--shared-group", SHARED_GROUP)
        return flags, self.broker.centre_url, {}

    def kill(self, name: str) -> None:
        process = self.broker._process
        assert process is not None
        process.kill()
        process.wait(timeout=10)

    def restart(self, name: str) -> None:
        self.broker.start()

    def running(self, name: str) -> bool:
        return self.broker.running

    def stop(self) -> None:
        self.broker.stop()


class ClusterBrokers:
    starts_after_enrolment = True

    def __init__(self, controller_data_dir: Path, workdir: Path) -> None:
        pki = ensure_controller_pki(
            controller_data_dir, ["127.0.0.1", "localhost"], now=datetime.now(UTC)
        )
        self.cluster = TelemetryNatsCluster(workdir, authority=(pki.ca_key, pki.ca_cert))

    @property
    def names(self) -> list[str]:
        return [f"broker-{node.name}" for node in self.cluster.nodes]

    @property
    def device_ports(self) -> list[int]:
        return [node.mqtt_port for node in self.cluster.nodes]

    def _node(self, name: str) -> NatsNode:
        return next(n for n in self.cluster.nodes if f"broker-{n.name}" == name)

    def start(self, device_ids: list[str]) -> None:
        for device_id in device_ids:
            self.cluster.grant(device_id)  # the nodes are not running yet: no reload
        self.cluster.start()

    def replica_args(self, number: int) -> tuple[tuple[str, ...], str, dict[str, str]]:
        nodes = self.cluster.nodes
        urls = [self.cluster.client_url(node) for node in nodes]
        first = (number - 1) % len(nodes)
        flags: tuple[str, ...] = ()
        for node in nodes:
            flags += ("--device-broker", self.cluster.url(node))
        env = {
            "MUSTER_CONTROLLER_TELEMETRY_TRANSPORT": "nats",
            "MUSTER_CONTROLLER_NATS_URLS": json.dumps(urls[first:] + urls[:first]),
            "MUSTER_CONTROLLER_NATS_STREAM_REPLICAS": str(len(nodes)),
            # Well inside the run's 2 s heartbeat: an event a dead replica held comes back soon.
            "MUSTER_CONTROLLER_NATS_ACK_WAIT_S": "5",
        }
        return flags, self.cluster.url(nodes[first]), env

    def kill(self, name: str) -> None:
        self.cluster.kill(self._node(name))

    def restart(self, name: str) -> None:
        self.cluster.restart(self._node(name))

    def running(self, name: str) -> bool:
        return self._node(name).running

    def stop(self) -> None:
        self.cluster.stop()


def make_brokers(kind: str, controller_data_dir: Path, workdir: Path) -> ChaosBrokers:
    if kind == "nats":
        return ClusterBrokers(controller_data_dir, workdir)
    return MosquittoBrokers(controller_data_dir, workdir)
