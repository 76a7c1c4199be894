"""The broker cluster's nodes travel with enrolment: the controller's ``device_brokers`` (checked
when it starts), the answer's ``mqtt_urls`` (checked by the device before it saves anything),
and the order the daemon tries them in (its own ``--broker`` first, then the cluster, then the
one broker of older controllers and identities)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from controller.devices.enrolment import Enroller, create_enrollment_code
from controller.devices.pki_store import ControllerPki
from controller.settings import ControllerSettings
from edge.enrolment import broker_urls
from edge.identity import Enrolment, IdentityStore
from muster.clock import VirtualClock
from muster.crypto import generate_device_key
from muster.crypto.pki import build_csr
from muster.errors import EnrollmentError
from muster.v1 import enrollment_pb2
from tests.unit.conftest import NOW
from tests.unit.test_enrollment import FINGERPRINT

NODES = ["mqtts://n1.example:8883", "mqtts://n2.example:8883", "mqtts://n3.example:8883"]


def test_the_settings_take_the_cluster_from_flags_or_one_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ControllerSettings(device_brokers=NODES).device_broker_urls() == NODES
    monkeypatch.setenv("MUSTER_CONTROLLER_DEVICE_BROKERS", ", ".join(NODES))
    assert ControllerSettings().device_broker_urls() == NODES
    monkeypatch.setenv("MUSTER_CONTROLLER_DEVICE_BROKERS", json.dumps(NODES[:2]))
    assert ControllerSettings().device_broker_urls() == NODES[:2]
    monkeypatch.delenv("MUSTER_CONTROLLER_DEVICE_BROKERS")
    # No cluster: the one address devices are told, else our own.
    assert ControllerSettings(device_mqtt_url="mqtts://d:1").device_broker_urls() == ["mqtts://d:1"]
    assert ControllerSettings(mqtt_url="mqtt://m:2").device_broker_urls() == ["mqtt://m:2"]


@pytest.mark.parametrize(
    ("nodes", "said"),
    [
        ([NODES[0], "mqtt://n2.example:1883"], "混用"),
        ([NODES[0], NODES[0]], "重复"),
        (["mqtts://n1.example:70000"], "端口"),
        (["tcp://n1.example:1883"], "mqtts://HOST:PORT"),
        (["mqtts://:8883"], "mqtts://HOST:PORT"),
    ],
)
def test_a_cluster_the_devices_could_not_use_is_refused_with_the_item_named(
    nodes: list[str], said: str
) -> None:
    with pytest.raises(ValidationError, match=said):
        ControllerSettings(device_brokers=nodes)


def test_the_answer_names_every_node_in_order_and_the_first_as_the_one_broker(
    sessions: sessionmaker[Session], pki: ControllerPki
) -> None:
    code = create_enrollment_code(
        sessions,
        township_code="370902001000",
        profile="simulator",
        valid_for=timedelta(days=1),
        created_by="t",
        now=NOW,
    )
    response = Enroller(
        sessions, pki, licence_days=30, mqtt_urls=NODES, data_endpoint="x:2",
        clock=VirtualClock(NOW),
    ).enroll(
        enrollment_pb2.EnrollRequest(
            enrollment_code=code,
            csr_der=build_csr(generate_device_key()),
            fingerprint=enrollment_pb2.HardwareFingerprint(salt=b"s" * 16, **FINGERPRINT),
        )
    )  # fmt: skip
    assert list(response.mqtt_urls) == NODES and response.mqtt_url == NODES[0]
    assert broker_urls(response) == NODES


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (enrollment_pb2.EnrollResponse(mqtt_url="", mqtt_urls=[]), "HOST:PORT"),
        (enrollment_pb2.EnrollResponse(mqtt_urls=[NODES[0], "mqtt://n2:1883"]), "混用"),
        (enrollment_pb2.EnrollResponse(mqtt_urls=[NODES[0], NODES[0]]), "重复"),
        (enrollment_pb2.EnrollResponse(mqtt_urls=["mqtts://n1:0x50"]), "端口"),
        (enrollment_pb2.EnrollResponse(mqtt_url="javascript:alert(1)"), "HOST:PORT"),
        (enrollment_pb2.EnrollResponse(mqtt_url=NODES[2], mqtt_urls=NODES[:2]), "不一致"),
    ],
)
def test_a_device_refuses_broker_addresses_it_could_not_use_before_saving_anything(
    answer: enrollment_pb2.EnrollResponse, said: str
) -> None:
    """A controller (misconfigured, or not ours) naming addresses the daemon could never use:
    the device would enrol and then never report, so enrolment fails, saying what to do."""
    with pytest.raises(EnrollmentError, match=said) as refused:
        broker_urls(answer)
    assert "未保存" in str(refused.value) and "重新注册" in str(refused.value)


def test_the_daemon_tries_its_own_list_then_the_cluster_then_the_one_broker(
    tmp_path: Path,
) -> None:
    cluster = Enrolment("d", "t", "simulator", NODES[0], "x:2", "", "", mqtt_urls=NODES)
    assert cluster.broker_urls() == NODES
    assert cluster.broker_urls(["mqtts://local:8883"]) == ["mqtts://local:8883"]
    # An identity saved before clusters (no mqtt_urls in its file) still loads and has its one.
    store = IdentityStore(tmp_path)
    store.save(
        key_pem=b"k", cert_pem=b"c", ca_pem=b"a", licence=b"",
        enrolment=Enrolment("d", "t", "simulator", NODES[1], "x:2", "", ""),
    )  # fmt: skip
    saved = json.loads(store.enrolment_path.read_text())
    del saved["mqtt_urls"]
    store.enrolment_path.write_text(json.dumps(saved))
    assert store.enrolment().broker_urls() == [NODES[1]]
