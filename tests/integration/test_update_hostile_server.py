"""The device's updater against a hostile update server (a real gRPC server on loopback that
lies): a manifest that is not JSON, one signed by another key, chunks past the part's size or
at the wrong offset. Each is refused with its reason and nothing of the device changes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from edge.updates.updater import Updater
from muster.clock import VirtualClock
from muster.crypto import generate_licence_authority_key
from muster.crypto.signing import sign_ed25519
from muster.releases import key_id, public_key_bytes
from muster.v1 import updates_pb2, updates_pb2_grpc
from tests.fixtures.components import free_port
from tests.unit.conftest import NOW

KEY = generate_licence_authority_key()
PART = b"print('hi')\n" * 100


def manifest(version: str = "0.2.0") -> bytes:
    doc = {
        "format": "muster-release/1",
        "version": version,
        "profiles": ["simulator"],
        "minimum_version": "0.1.0",
        "key_id": key_id(KEY),
        "parts": [
            {"name": "start.py", "size": len(PART), "sha256": hashlib.sha256(PART).hexdigest()}
        ],
    }
    return json.dumps(doc).encode()


class Liar(updates_pb2_grpc.UpdatesServicer):
    def __init__(self) -> None:
        self.mode = ""
        self.reports: list[updates_pb2.UpdateReport] = []

    async def Offer(self, request: object, context: object) -> updates_pb2.OfferResponse:
        raw = b"{not json" if self.mode == "garbage" else manifest()
        key = generate_licence_authority_key() if self.mode == "stranger" else KEY
        return updates_pb2.OfferResponse(
            available=True,
            rollout_id=1,
            manifest=raw,
            signature=sign_ed25519(key, raw),
            release_keys=[
                updates_pb2.ReleaseKey(key_id=key_id(KEY), public_key=public_key_bytes(KEY))
            ],
            health_window_s=60,
        )

    async def Download(
        self, request: updates_pb2.DownloadRequest, context: object
    ) -> AsyncIterator[updates_pb2.DownloadChunk]:
        if self.mode == "oversized":
            yield updates_pb2.DownloadChunk(offset=request.offset, data=PART + b"extra")
        elif self.mode == "offset":
            yield updates_pb2.DownloadChunk(offset=request.offset + 7, data=PART[:10])
        else:
            yield updates_pb2.DownloadChunk(offset=request.offset, data=PART[request.offset :])

    async def Report(
        self, request: updates_pb2.UpdateReport, context: object
    ) -> updates_pb2.UpdateReportAck:
        self.reports.append(request)
        return updates_pb2.UpdateReportAck()


@pytest.fixture
async def liar() -> AsyncIterator[tuple[Liar, str]]:
    server = grpc.aio.server()
    servicer = Liar()
    updates_pb2_grpc.add_UpdatesServicer_to_server(servicer, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "bad_manifest"),
        ("stranger", "bad_signature"),
        ("oversized", "bad_download"),
        ("offset", "bad_download"),
    ],
)
async def test_lies_are_refused_and_change_nothing(
    tmp_path: Path, liar: tuple[Liar, str], mode: str, reason: str
) -> None:
    servicer, endpoint = liar
    restarts: list[str] = []

    async def restart() -> None:
        restarts.append("x")

    updater = Updater(
        tmp_path,
        profile="simulator",
        factory_version="0.1.0",
        channel=lambda: grpc.aio.insecure_channel(endpoint),
        clock=VirtualClock(NOW),
        restart=restart,
        disk_margin_bytes=0,
    )
    # The device already trusts the release key (as after its first offer).
    (tmp_path / "software" / "release-keys.json").write_text(
        json.dumps({key_id(KEY): public_key_bytes(KEY).hex()})
    )
    servicer.mode = mode
    assert await updater.check_once() == f"refused:{reason}"
    assert updater.slots.current_slot() == "factory" and restarts == []
    assert not (tmp_path / "software" / "a").exists()
    assert not (tmp_path / "software" / "downloads").exists()
    assert servicer.reports[-1].state == updates_pb2.UPDATE_STATE_REFUSED
    assert servicer.reports[-1].reason.startswith(reason)
    # Once the server is honest (and the refusal forgotten) the same device takes the release.
    servicer.mode = ""
    updater.slots.save(type(updater.slots.load())())
    assert await updater.check_once() == "switched"
    assert updater.slots.running_version() == "0.2.0"
