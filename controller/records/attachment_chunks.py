"""Attachment chunks at the centre: each photo, signature or scan arrives as sealed chunks ahead
of the record that names them, and waits here, keyed by (record id, name, index), until it does.

A verified chunk is never replaced; an unverified one is, so a photo retaken after an
``attachment_corrupt`` rejection supersedes the old pieces. Chunks whose record has not come are
*unclaimed*: each device may hold at most ``ChunkQuota.max_chunks`` of them and
``ChunkQuota.max_bytes`` of ciphertext; a chunk over that is refused (``chunk_refused`` to the
device), and unclaimed chunks older than ``ChunkQuota.expire_after`` are deleted by
``ChunkSweeper`` on the controller's clock.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from controller.db.models import Attachment
from muster.clock import Clock
from muster.crypto import ATTACHMENT_CHUNK_BYTES
from muster.records import ATTACHMENT_MAX_BYTES, ATTACHMENT_NAMES, RECORD_ID_PATTERN
from muster.v1 import data_pb2

__all__ = [
    "CHUNK_REFUSALS",
    "ChunkQuota",
    "ChunkStore",
    "ChunkSweeper",
    "Chunks",
    "attachment_chunk",
    "explain_missing",
    "safe_id",
]

log = structlog.get_logger(__name__)

# Most chunks one attachment may have; a chunk's ciphertext is its plaintext plus the GCM tag.
_MAX_CHUNKS = -(-ATTACHMENT_MAX_BYTES // ATTACHMENT_CHUNK_BYTES)
_MAX_CHUNK_CIPHERTEXT = ATTACHMENT_CHUNK_BYTES + 16

Chunks = dict[tuple[str, str], list[Attachment]]

_RECORD_ID = re.compile(RECORD_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class ChunkQuota:
    """What one device may keep at the centre in chunks whose record has not come yet."""

    max_chunks: int = 200  # 200 chunks of 256 KiB: 50 MB, a few dozen records' photos
    max_bytes: int = 50 * 1024 * 1024
    expire_after: timedelta = timedelta(days=7)


CHUNK_REFUSALS = {
    "device_mismatch": "附件分块的设备编号与本机证书不符。",
    "record_id": "附件分块的记录编号不是规范的 UUID。",
    "name": "附件名称不被接受。",
    "index": "附件分块的序号或块数不对。",
    "size": "附件分块过大。",
    "format": "附件分块的封存密钥或随机数长度不对。",
    "quota": (
        "中心为本机暂存的未配对附件已达上限，该附件分块未被接收。"
        "请先上传已封存的记录；设备会自动重新发送。"
    ),
}


class ChunkStore:
    """The chunks one controller process keeps and expires, within each device's quota."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock, quota: ChunkQuota) -> None:
        self._sessions = sessions
        self._clock = clock
        self._quota = quota

    def held(self, session: Session, record_ids: list[str]) -> Chunks:
        """Every chunk held for these records, in order, by (record id, name)."""
        held: Chunks = {}
        for row in session.scalars(
            select(Attachment)
            .where(Attachment.record_id.in_(record_ids))
            .order_by(Attachment.record_id, Attachment.name, Attachment.chunk_index)
        ):
            held.setdefault((row.record_id, row.name), []).append(row)
        return held

    def keep(
        self,
        session: Session,
        device_id: str,
        chunks: Sequence[data_pb2.AttachmentChunk],
        now: datetime,
    ) -> list[tuple[data_pb2.AttachmentChunk, str]]:
        """Keep each chunk once (see the module docstring for which replace which).

        Returns the chunks refused, each with its reason code (``CHUNK_REFUSALS``)."""
        refused: list[tuple[data_pb2.AttachmentChunk, str]] = []
        good: list[data_pb2.AttachmentChunk] = []
        for chunk in chunks:
            problem = self._chunk_problem(device_id, chunk)
            if problem is None:
                good.append(chunk)
            else:
                refused.append((chunk, problem))
        if good:
            good, over = self._within_quota(session, device_id, good)
            refused += [(chunk, "quota") for chunk in over]
        for chunk, problem in refused:
            log.warning(
                "attachment chunk refused",
                device_id=device_id,
                record_id=safe_id(chunk.record_id),
                chunk=chunk.index,
                reason=problem,
            )
        if not good:
            return refused
        existing = {
            (row.record_id, row.name, row.chunk_index): row
            for row in session.scalars(
                select(Attachment).where(Attachment.record_id.in_({c.record_id for c in good}))
            )
        }
        fresh: dict[tuple[str, str, int], dict[str, Any]] = {}
        for chunk in good:
            key = (chunk.record_id, chunk.name, chunk.index)
            values = {
                "record_id": chunk.record_id,
                "name": chunk.name,
                "chunk_index": chunk.index,
                "chunk_count": chunk.count,
                "device_id": device_id,
                "key_version": chunk.key_version,
                "ephemeral_public_key": chunk.ephemeral_public_key,
                "nonce": chunk.nonce,
                "ciphertext": chunk.ciphertext,
                "received_at": now,
            }
            row = existing.get(key)
            if row is None:
                fresh[key] = values
            elif row.verified_at is None and row.nonce != chunk.nonce:
                for field, value in values.items():
                    setattr(row, field, value)
        if fresh:
            session.execute(insert(Attachment), list(fresh.values()))
        session.flush()
        return refused

    def _within_quota(
        self, session: Session, device_id: str, chunks: list[data_pb2.AttachmentChunk]
    ) -> tuple[list[data_pb2.AttachmentChunk], list[data_pb2.AttachmentChunk]]:
        """(kept, over quota): chunks of records already here, or replacing a chunk already
        held, never count; new unclaimed chunks are taken in order while the device's unclaimed
        count and bytes stay within the quota."""
        count, size = session.execute(
            select(func.count(), func.coalesce(func.sum(func.length(Attachment.ciphertext)), 0))
            .select_from(Attachment)
            .where(Attachment.device_id == device_id, Attachment.verified_at.is_(None))
        ).one()
        held = {
            (r, n, i)
            for r, n, i in session.execute(
                select(Attachment.record_id, Attachment.name, Attachment.chunk_index).where(
                    Attachment.record_id.in_({c.record_id for c in chunks})
                )
            )
        }
        kept: list[data_pb2.AttachmentChunk] = []
        over: list[data_pb2.AttachmentChunk] = []
        for chunk in chunks:
            key = (chunk.record_id, chunk.name, chunk.index)
            if key in held:
                kept.append(chunk)
                continue
            if count + 1 > self._quota.max_chunks or size + len(chunk.ciphertext) > (
                self._quota.max_bytes
            ):
                over.append(chunk)
                continue
            held.add(key)
            count += 1
            size += len(chunk.ciphertext)
            kept.append(chunk)
        return kept, over

    def sweep_unclaimed(self) -> int:
        """Delete unclaimed chunks older than the quota's ``expire_after``; how many went."""
        cutoff = self._clock.now() - self._quota.expire_after
        with self._sessions.begin() as session:
            result = session.execute(
                delete(Attachment).where(
                    Attachment.verified_at.is_(None), Attachment.received_at < cutoff
                )
            )
        removed = int(getattr(result, "rowcount", 0) or 0)
        if removed:
            log.info("unclaimed attachment chunks expired", chunks=removed, before=str(cutoff))
        return removed

    @staticmethod
    def _chunk_problem(device_id: str, chunk: data_pb2.AttachmentChunk) -> str | None:
        if chunk.device_id != device_id:
            return "device_mismatch"
        if not _RECORD_ID.fullmatch(chunk.record_id):
            return "record_id"
        if chunk.name not in ATTACHMENT_NAMES:
            return "name"
        if not 0 <= chunk.index < chunk.count <= _MAX_CHUNKS:
            return "index"
        if len(chunk.ciphertext) > _MAX_CHUNK_CIPHERTEXT:
            return "size"
        if len(chunk.ephemeral_public_key) != 32 or len(chunk.nonce) != 12:
            return "format"
        return None


def explain_missing(
    ack: data_pb2.RecordAck, record_id: str, refused: dict[tuple[str, str], str]
) -> data_pb2.RecordAck:
    """An attachment is missing because the centre refused its chunk over the quota in this
    very batch: say so, so the device can show why (it keeps the record and sends it again)."""
    if "quota" not in {code for (rid, _name), code in refused.items() if rid == record_id}:
        return ack
    return data_pb2.RecordAck(
        record_id=record_id,
        status=data_pb2.RecordAck.STATUS_INCOMPLETE,
        reason_code="chunk_quota",
        reason=CHUNK_REFUSALS["quota"],
    )


class Sweepable(Protocol):
    def sweep_unclaimed(self) -> int: ...


class ChunkSweeper:
    """Expires unclaimed chunks every ``every_s`` of the controller's clock."""

    def __init__(self, store: Sweepable, clock: Clock, *, every_s: float = 3600.0) -> None:
        self._store = store
        self._clock = clock
        self._every = every_s

    async def run(self) -> None:
        """Sweep, sleep, sweep. A failure ends the run; the controller's supervisor restarts it."""
        while True:
            await asyncio.to_thread(self._store.sweep_unclaimed)
            await self._clock.sleep(self._every)


def attachment_chunk(row: Attachment) -> data_pb2.AttachmentChunk:
    """A stored chunk as the device sent it, for ``open_attachment``."""
    return data_pb2.AttachmentChunk(
        record_id=row.record_id,
        device_id=row.device_id,
        name=row.name,
        key_version=row.key_version,
        index=row.chunk_index,
        count=row.chunk_count,
        ephemeral_public_key=row.ephemeral_public_key,
        nonce=row.nonce,
        ciphertext=row.ciphertext,
    )


def safe_id(record_id: str) -> str:
    """A record id fit to echo back and log: a hostile one is cut short."""
    return record_id[:64]
