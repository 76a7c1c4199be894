"""Slice transfer, sans-I/O: what the controller sends a device and how the device checks it.

A transfer is one ``SignedSliceManifest`` followed by ``SliceData`` chunks numbered from 0, the
last one flagged. The manifest is signed by the controller's document key (the licence
authority's Ed25519 key, which every device already trusts from enrolment) and carries the data
key wrapped to the one device it was cut for. ``SliceWriter`` produces the messages;
``SliceReader`` takes them in and yields events. No sockets, no clocks: time is a parameter.

Reader states (a table, as the events it may produce)::

    expect_manifest --manifest ok--> expect_data --data i (i == next)--> expect_data
                                                 --data last-------------> done
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from muster.crypto import (
    DeviceKey,
    DevicePublicKey,
    LicenceAuthorityKey,
    LicenceAuthorityPublicKey,
    sign_ed25519,
    verify_ed25519,
)
from muster.crypto.slices import (
    new_data_key,
    open_chunk,
    seal_chunk,
    unwrap_data_key,
    wrap_data_key,
)
from muster.errors import MusterError, SealError, SignatureError
from muster.v1 import data_pb2

__all__ = [
    "ChunkReceived",
    "ManifestAccepted",
    "SliceComplete",
    "SliceProtocolError",
    "SliceReader",
    "SliceWithdrawn",
    "SliceWriter",
]

CHUNK_PEOPLE = 1000


class SliceProtocolError(MusterError):
    """A slice transfer broke the rules: bad signature, foreign device, chunk out of order."""


@dataclass(frozen=True, slots=True)
class ManifestAccepted:
    manifest: data_pb2.SliceManifest


@dataclass(frozen=True, slots=True)
class ChunkReceived:
    index: int
    people: tuple[data_pb2.SlicePerson, ...]


@dataclass(frozen=True, slots=True)
class SliceComplete:
    version: int


@dataclass(frozen=True, slots=True)
class SliceWithdrawn:
    township_code: str


def _wrap_aad(m: data_pb2.SliceManifest) -> bytes:
    return (
        b"muster.v1.slice.key\x00"
        + "|".join((m.township_code, m.device_id, str(m.base_version), str(m.version))).encode()
    )


def _chunk_aad(m: data_pb2.SliceManifest, index: int, last: bool) -> bytes:
    return _wrap_aad(m) + struct.pack(">I?", index, last) + m.resume_after.encode()


class SliceWriter:
    """The controller's side of one transfer to one device."""

    def __init__(
        self,
        *,
        township_code: str,
        device_id: str,
        device_key: DevicePublicKey,
        base_version: int,
        version: int,
        signing_key: LicenceAuthorityKey,
        now: datetime,
        not_after: datetime | None = None,
        revoked: bool = False,
        resume_after: str = "",
    ) -> None:
        self.manifest = data_pb2.SliceManifest(
            township_code=township_code,
            device_id=device_id,
            base_version=base_version,
            version=version,
            full=base_version == 0,
            revoked=revoked,
            resume_after=resume_after,
        )
        self.manifest.issued_at.FromDatetime(now.astimezone(UTC))
        if not_after is not None:
            self.manifest.not_after.FromDatetime(not_after.astimezone(UTC))
        self._key = new_data_key()
        point, nonce, wrapped = wrap_data_key(self._key, device_key, _wrap_aad(self.manifest))
        self.manifest.ephemeral_public_key = point
        self.manifest.wrap_nonce = nonce
        self.manifest.wrapped_key = wrapped
        self._signing_key = signing_key
        self._index = 0

    def manifest_chunk(self) -> data_pb2.SliceChunk:
        body = self.manifest.SerializeToString()
        return data_pb2.SliceChunk(
            manifest=data_pb2.SignedSliceManifest(
                manifest=body, signature=sign_ed25519(self._signing_key, body)
            )
        )

    def data_chunk(
        self, people: Sequence[data_pb2.SlicePerson], *, last: bool
    ) -> data_pb2.SliceChunk:
        plain = zlib.compress(data_pb2.SlicePeople(people=people).SerializeToString(), 6)
        index = self._index
        self._index += 1
        nonce, ciphertext = seal_chunk(self._key, plain, _chunk_aad(self.manifest, index, last))
        return data_pb2.SliceChunk(
            data=data_pb2.SliceData(
                index=index, nonce=nonce, ciphertext=ciphertext, people=len(people), last=last
            )
        )


class SliceReader:
    """The device's side: feed chunks in order, get events; raises ``SliceProtocolError``."""

    def __init__(
        self,
        *,
        device_id: str,
        township_code: str,
        device_key: DeviceKey,
        authority_key: LicenceAuthorityPublicKey,
    ) -> None:
        self._device_id = device_id
        self._township = township_code
        self._device_key = device_key
        self._authority = authority_key
        self._manifest: data_pb2.SliceManifest | None = None
        self._key = b""
        self._next = 0
        self.done = False

    def feed(
        self, chunk: data_pb2.SliceChunk
    ) -> list[ManifestAccepted | ChunkReceived | SliceComplete | SliceWithdrawn]:
        if self.done:
            raise SliceProtocolError("切片传输已结束，却又收到数据")
        if chunk.HasField("manifest"):
            return self._on_manifest(chunk.manifest)
        if chunk.HasField("data"):
            return self._on_data(chunk.data)
        raise SliceProtocolError("切片消息为空")

    def _on_manifest(
        self, signed: data_pb2.SignedSliceManifest
    ) -> list[ManifestAccepted | ChunkReceived | SliceComplete | SliceWithdrawn]:
        if self._manifest is not None:
            raise SliceProtocolError("一次传输中收到两份切片清单")
        try:
            verify_ed25519(self._authority, signed.manifest, signed.signature)
        except SignatureError:
            raise SliceProtocolError("切片清单签名无效：不是本中心签发的数据") from None
        manifest = data_pb2.SliceManifest.FromString(signed.manifest)
        if manifest.device_id != self._device_id or manifest.township_code != self._township:
            raise SliceProtocolError("切片不是发给本设备或本乡镇的，已拒收")
        self._manifest = manifest
        if manifest.revoked:
            self.done = True
            return [ManifestAccepted(manifest), SliceWithdrawn(manifest.township_code)]
        try:
            self._key = unwrap_data_key(
                self._device_key,
                manifest.ephemeral_public_key,
                manifest.wrap_nonce,
                manifest.wrapped_key,
                _wrap_aad(manifest),
            )
        except SealError:
            raise SliceProtocolError("无法解开切片密钥：切片不是为本设备加密的") from None
        return [ManifestAccepted(manifest)]

    def _on_data(
        self, data: data_pb2.SliceData
    ) -> list[ManifestAccepted | ChunkReceived | SliceComplete | SliceWithdrawn]:
        manifest = self._manifest
        if manifest is None:
            raise SliceProtocolError("切片数据先于清单到达")
        if data.index != self._next:
            raise SliceProtocolError(f"切片数据块顺序错误：应为 {self._next}，收到 {data.index}")
        try:
            plain = open_chunk(
                self._key, data.nonce, data.ciphertext, _chunk_aad(manifest, data.index, data.last)
            )
            people = data_pb2.SlicePeople.FromString(zlib.decompress(plain)).people
        except (SealError, zlib.error) as exc:
            raise SliceProtocolError("切片数据块已损坏或被篡改") from exc
        self._next += 1
        events: list[ManifestAccepted | ChunkReceived | SliceComplete | SliceWithdrawn] = [
            ChunkReceived(data.index, tuple(people))
        ]
        if data.last:
            self.done = True
            events.append(SliceComplete(manifest.version))
        return events
