"""A stored record's photo, signature or scan, decrypted with the upload keys and checked
against the size and SHA-256 the record names: one function for every reader at the centre
(the admin's attachment route, the confirmation's face check)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Attachment, Record
from controller.records.attachment_chunks import attachment_chunk
from muster.crypto import UploadPrivateKey, open_attachment
from muster.errors import NotFoundError, SealError
from muster.records import AttachmentRef

__all__ = ["record_attachment"]


def record_attachment(
    session: Session, record_id: str, name: str, keys: Mapping[int, UploadPrivateKey]
) -> tuple[bytes, str]:
    """The decrypted attachment ``name`` of a stored record and its media type.
    ``NotFoundError`` when the record or the attachment is missing, ``SealError`` when it cannot
    be opened (a lost upload key) or does not match the record (a damaged database)."""
    record = session.get(Record, record_id)
    if record is None:
        raise NotFoundError(f"没有记录 {record_id}")
    described = record.payload.get("attachments", {}).get(name)
    if described is None:
        raise NotFoundError(f"记录 {record_id} 没有附件“{name}”")
    ref = AttachmentRef.model_validate(described)
    rows = session.scalars(
        select(Attachment)
        .where(
            Attachment.record_id == record_id,
            Attachment.name == name,
            Attachment.verified_at.is_not(None),
        )
        .order_by(Attachment.chunk_index)
    ).all()
    try:
        data = open_attachment([attachment_chunk(row) for row in rows], keys)
    except SealError:
        # Verified at ingest, so only a lost upload key or a damaged database gets here.
        raise SealError(
            f"记录 {record_id} 的附件“{name}”无法解密：请检查上传密钥是否齐全"
        ) from None
    if len(data) != ref.size or hashlib.sha256(data).hexdigest() != ref.sha256:
        raise SealError(f"记录 {record_id} 的附件“{name}”与记录不符：数据库可能已损坏")
    return data, ref.media_type
