"""Slices end to end with real processes (S-04): the centre imports the initial data, a device
syncs exactly its township's people, collects from them, gets deltas, and is refused another
township's slice; a revoked device gets nothing; a withdrawn slice is wiped from the device."""

from __future__ import annotations

import json
import subprocess
from datetime import date
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text

from edge.identity import IdentityStore
from edge.slice_store import SliceStore
from muster.dataset import write_dataset
from muster.v1 import data_pb2, data_pb2_grpc
from tests.fixtures.fleet import (
    MUSTER,
    ControllerProcess,
    EdgeProcess,
    Fleet,
    wait_until,
    write_profile,
)
from tests.fixtures.mosquitto import MosquittoBroker

T1, T2 = "370902001000", "370902002000"
# The synthetic people's service dates end by this day; the controller imports them later.
DATA_DAY = date(2026, 11, 23)


def controller_cli(controller: ControllerProcess, *args: str) -> str:
    out = subprocess.run(
        [*MUSTER, *args, "--data-dir", str(controller.data_dir)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out.stdout


def township_ids(controller: ControllerProcess, township: str) -> set[str]:
    engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
    try:
        with engine.connect() as conn:
            return {
                r[0]
                for r in conn.execute(
                    text("SELECT id_number FROM people WHERE township_code = :t AND NOT removed"),
                    {"t": township},
                )
            }
    finally:
        engine.dispose()


def device_slice(edge: EdgeProcess) -> tuple[int, int]:
    store = SliceStore(
        edge.state_dir / "slices" / "slice.sqlite3", edge.state_dir / "identity" / "slice.key"
    )
    try:
        return store.version, store.count()
    finally:
        store.close()


def pull_as(edge: EdgeProcess, township: str) -> list[data_pb2.SliceChunk]:
    """Ask the data port for a slice with the device's own certificate."""
    identity = IdentityStore(edge.state_dir)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=identity.ca_path.read_bytes(),
        private_key=identity.key_path.read_bytes(),
        certificate_chain=identity.cert_path.read_bytes(),
    )
    endpoint = json.loads(identity.enrolment_path.read_text())["data_endpoint"]
    with grpc.secure_channel(endpoint, credentials) as channel:
        stub = data_pb2_grpc.SlicesStub(channel)
        return list(stub.Pull(data_pb2.SliceRequest(township_code=township), timeout=30))


def test_devices_work_from_their_townships_slice(
    fleet: Fleet,
    mosquitto: MosquittoBroker,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A device syncs its township's people (and only those), the records it collects are of
    those people, a re-import with a move reaches it as a delta, and asking for the other
    township's slice, or asking after revocation, is refused."""
    monkeypatch.setenv("MUSTER_EDGE_SLICE_EVERY_S", "1")
    monkeypatch.setenv("MUSTER_EDGE_HEALTH_EVERY_S", "1")
    controller = fleet.controller(mqtt_url=mosquitto.url)
    data = tmp_path / "people.xlsx"
    write_dataset(data, people=2500, township_codes=[T1, T2], seed=3, today=DATA_DAY)
    controller_cli(controller, "controller", "import", "--file", str(data))
    mine = township_ids(controller, T1)
    assert 1000 < len(mine) < 1500

    profile = write_profile(tmp_path / "p.yaml", records_per_minute=600)
    edge = fleet.edge(controller, profile, T1)
    wait_until(
        lambda: (edge.state_dir / "slices").exists() and device_slice(edge)[1] == len(mine),
        90,
        "the full slice on the device",
    )
    version = device_slice(edge)[0]
    assert version > 0

    def collected_ids() -> list[str]:
        engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
        try:
            with engine.connect() as conn:
                payloads = [
                    json.loads(r[0]) if isinstance(r[0], str) else r[0]
                    for r in conn.execute(text("SELECT payload FROM records"))
                ]
        finally:
            engine.dispose()
        return [p["person"]["id_number"] for p in payloads]

    # Until the slice has arrived the clerks type people from scratch (S-12); from then on they
    # work from it.
    wait_until(
        lambda: len([i for i in collected_ids() if i in mine]) >= 10,
        60,
        "records collected from the slice",
    )
    assert not set(collected_ids()) & township_ids(controller, T2)

    # A person moves to the other township: the device forgets them through a delta.
    moved = sorted(mine)[0]
    rows = data.with_suffix(".move.csv")
    write_dataset(
        rows, people=1, township_codes=[T2], seed=99, today=DATA_DAY
    )  # header and a newcomer
    with rows.open("a", encoding="utf-8") as fh:
        engine = create_engine(f"sqlite:///{controller.data_dir / 'controller.db'}")
        with engine.connect() as conn:
            details = conn.execute(
                text("SELECT details FROM people WHERE id_number = :n"), {"n": moved}
            ).scalar_one()
        engine.dispose()
        d = json.loads(details) if isinstance(details, str) else details
        fh.write(
            ",".join(
                [
                    T2,
                    d["name"],
                    d["id_number"],
                    "男" if d["sex"] == "1" else "女",
                    d["ethnicity"],
                    d["birth_date"],
                    d["category"],
                    d["relation"],
                    d["political_status"],
                    d["enlistment_date"],
                    d["discharge_date"],
                    d["rank_class"],
                    d["service_unit"],
                    d["service_number"],
                    d["household_registration"],
                ]
            )
            + "\n"
        )
    out = controller_cli(controller, "controller", "import", "--file", str(rows))
    assert '"moved": 1' in out
    wait_until(
        lambda: device_slice(edge) == (version + 1, len(mine) - 1), 60, "the delta on the device"
    )

    with pytest.raises(grpc.RpcError) as refused:
        pull_as(edge, T2)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert T2 in (refused.value.details() or "")
    own = pull_as(edge, T1)
    assert own[0].HasField("manifest") and sum(c.data.people for c in own[1:]) == len(mine) - 1

    # The slice is withdrawn: the device wipes it.
    controller_cli(
        controller, "controller", "slice", "--township", T1, "--revoke", "--reason", "test"
    )
    wait_until(lambda: device_slice(edge) == (0, 0), 60, "the withdrawn slice wiped")

    subprocess.run(
        [
            *MUSTER,
            "provision",
            "revoke",
            edge.device_id,
            "--reason",
            "test",
            "--data-dir",
            str(controller.data_dir),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with pytest.raises(grpc.RpcError) as revoked:
        pull_as(edge, T1)
    assert revoked.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE)
