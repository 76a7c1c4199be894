"""A sealed record's envelope, checked before any database work: every value in it must fit the
column it is stored in, so a hostile one (a 41-character id is a DataError on PostgreSQL) is
answered alone and never reaches a statement shared with the rest of its batch."""

from __future__ import annotations

import re

from muster.records import RECORD_ID_PATTERN, RECORD_MAX_BYTES
from muster.v1 import data_pb2
from muster.wire_values import timestamp_or_none

__all__ = ["envelope_problem"]

_RECORD_ID = re.compile(RECORD_ID_PATTERN)
_SCHEMA_VERSION = re.compile(r"^[a-z][a-z_]{0,39}/[0-9]{1,8}$")
_DEVICE_ID_MAX = 64
# A record's ciphertext is its plaintext (at most RECORD_MAX_BYTES) plus the GCM tag; a DER
# ECDSA P-256 signature is at most 72 bytes.
_MAX_RECORD_CIPHERTEXT = RECORD_MAX_BYTES + 16
_MAX_SIGNATURE = 72


def envelope_problem(sealed: data_pb2.SealedRecord) -> str | None:
    """What is wrong with a sealed record's envelope, in words, or None. Checked before any
    database work: every value here must fit the columns it is stored in."""
    if not _RECORD_ID.fullmatch(sealed.record_id):
        return "记录编号不是规范的 UUID (record_id is not a canonical lower-case UUID)"
    if not 0 < len(sealed.device_id) <= _DEVICE_ID_MAX:
        return f"设备编号长度不对 (device_id must be 1..{_DEVICE_ID_MAX} characters)"
    if not _SCHEMA_VERSION.fullmatch(sealed.schema_version):
        return "表单版本格式不对 (schema_version must look like 'category/1')"
    if len(sealed.ephemeral_public_key) != 32 or len(sealed.nonce) != 12:
        return "封存密钥或随机数长度不对 (ephemeral key must be 32 bytes, nonce 12)"
    if not 16 < len(sealed.ciphertext) <= _MAX_RECORD_CIPHERTEXT:
        return f"密文长度不对 (ciphertext must be 17..{_MAX_RECORD_CIPHERTEXT} bytes)"
    if not 0 < len(sealed.signature) <= _MAX_SIGNATURE:
        return f"签名长度不对 (signature must be 1..{_MAX_SIGNATURE} bytes)"
    if not sealed.HasField("sealed_at"):
        return "缺少封存时间 (sealed_at missing)"
    if timestamp_or_none(sealed, "sealed_at") is None:
        return "封存时间超出范围 (sealed_at must fall in the years 0001-9999)"
    return None
