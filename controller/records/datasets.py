"""Electronic data sets for the level above (S-08, S-11): the approved records of an area,
signed by this controller and encrypted to the upper level's key; and their import there.

The file is one JSON document::

    {"format": "muster-dataset/1",
     "header": {dataset_id, area, level, source, created_at, records, recipient, signer},
     "ephemeral": b64, "nonce": b64, "ciphertext": b64, "signature": b64}

The plaintext is gzip-compressed JSON lines, one approved record each. The header is the
encryption's associated data and, with the ciphertext, what the Ed25519 signature covers, so
neither can be changed or swapped. ``dataset_id`` is the SHA-256 of the plaintext: the same
records exported twice give the same id.

Import checks, in order, and changes nothing unless all pass: the format, that the signer is a
key the operator trusts (``--trust``, the lower level's ``dataset keys`` file), the signature,
that it was encrypted to one of our keys, that it opens, that every record lies inside the
header's area. It is idempotent: a data set already imported is reported and skipped; records
already held with the same content are left alone; a record id held with other content stops
the whole import with its id.

Exchange of keys: each level runs ``muster controller dataset keys --out KEYS.json`` and hands
the file over (in person or over the campaign's VPN); the lower level exports ``--to`` the upper
level's file, the upper level imports ``--trust`` the lower level's.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from controller.db.models import ImportedDataset, ImportedRecord, Record
from controller.records.review import APPROVED, LEVELS
from muster.crypto import (
    LicenceAuthorityKey,
    UploadPrivateKey,
    licence_public_bytes,
    licence_public_from_bytes,
    sign_ed25519,
    upload_public_bytes,
    upload_public_from_bytes,
    verify_ed25519,
)
from muster.crypto.datasets import open_dataset, seal_dataset
from muster.errors import ConfigError, CryptoError, SealError, SignatureError
from muster.regions import DRILL_LENGTHS

__all__ = [
    "DatasetError",
    "ImportResult",
    "export_dataset",
    "import_dataset",
    "keys_document",
]

FORMAT = "muster-dataset/1"
_SIGN_LABEL = b"muster.v1.dataset\x00"


class DatasetError(ConfigError):
    """A data set cannot be exported or imported; the message says what to do."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any, what: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError as exc:
        raise DatasetError(f"数据集文件的 {what} 字段已损坏") from exc


def _canonical(header: dict[str, Any]) -> bytes:
    return json.dumps(header, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _signing_input(header: dict[str, Any], ephemeral: bytes, nonce: bytes, ct: bytes) -> bytes:
    return (
        _SIGN_LABEL + hashlib.sha256(_canonical(header) + b"\0" + ephemeral + nonce + ct).digest()
    )


def keys_document(
    source: str, signer: LicenceAuthorityKey, upload: UploadPrivateKey
) -> dict[str, str]:
    """What this controller hands the levels next to it: the key data sets for it are
    encrypted to, and the key its own data sets are signed with."""
    return {
        "source": source,
        "upload_public": upload_public_bytes(upload).hex(),
        "signing_public": licence_public_bytes(signer).hex(),
    }


def read_keys(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not {"upload_public", "signing_public"} <= set(doc):
            raise ValueError
        bytes.fromhex(doc["upload_public"])
        bytes.fromhex(doc["signing_public"])
    except (OSError, ValueError) as exc:
        raise DatasetError(
            f"{path} 不是密钥文件：请用 muster controller dataset keys --out 生成"
        ) from exc
    return {k: str(v) for k, v in doc.items()}


def _records(session: Session, area: str) -> Iterator[dict[str, Any]]:
    query = (
        select(Record)
        .where(Record.township_code.startswith(area), Record.review_status == APPROVED)
        .order_by(Record.record_id)
        .execution_options(yield_per=2000)
    )
    for record in session.scalars(query):
        yield {
            "record_id": record.record_id,
            "township_code": record.township_code,
            "category": record.category,
            "id_number": record.id_number or "",
            "content_hash": record.content_hash,
            "payload": record.payload,
        }
    imported = (
        select(ImportedRecord)
        .where(ImportedRecord.township_code.startswith(area))
        .order_by(ImportedRecord.record_id)
        .execution_options(yield_per=2000)
    )
    for row in session.scalars(imported):
        yield {
            "record_id": row.record_id,
            "township_code": row.township_code,
            "category": row.category,
            "id_number": row.id_number,
            "content_hash": row.content_hash,
            "payload": row.payload,
        }


def export_dataset(
    session: Session,
    *,
    area: str,
    level: str,
    source: str,
    signer: LicenceAuthorityKey,
    recipient_keys: dict[str, str],
    now: datetime,
) -> tuple[bytes, int]:
    """(file content, number of records) of the approved records of ``area``."""
    if level not in LEVELS:
        raise DatasetError(f"层级 {level!r} 无效；可选：{', '.join(LEVELS)}")
    if not area.isdigit() or len(area) not in DRILL_LENGTHS:
        raise DatasetError(f"地区 {area!r} 应为 2、4、6 或 9 位地区代码")
    lines = [
        json.dumps(r, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        for r in _records(session, area)
    ]
    if not lines:
        raise DatasetError(f"地区 {area} 没有已通过审核的记录，无可上报的数据")
    body = ("\n".join(lines) + "\n").encode()
    try:
        recipient = upload_public_from_bytes(bytes.fromhex(recipient_keys["upload_public"]))
    except (CryptoError, ValueError) as exc:
        raise DatasetError("上级密钥文件中的 upload_public 无效") from exc
    header = {
        "dataset_id": hashlib.sha256(body).hexdigest(),
        "area": area,
        "level": level,
        "source": source,
        "created_at": now.astimezone(UTC).isoformat(),
        "records": len(lines),
        "recipient": recipient_keys["upload_public"],
        "signer": licence_public_bytes(signer).hex(),
    }
    # mtime=0: the same records give the same bytes to encrypt.
    ephemeral, nonce, ciphertext = seal_dataset(
        recipient, gzip.compress(body, mtime=0), _canonical(header)
    )
    signature = sign_ed25519(signer, _signing_input(header, ephemeral, nonce, ciphertext))
    document = {
        "format": FORMAT,
        "header": header,
        "ephemeral": _b64(ephemeral),
        "nonce": _b64(nonce),
        "ciphertext": _b64(ciphertext),
        "signature": _b64(signature),
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode(), len(lines)


@dataclass(frozen=True, slots=True)
class ImportResult:
    dataset_id: str
    area: str
    source: str
    added: int
    unchanged: int
    already_imported: bool


def _parse(blob: bytes) -> tuple[dict[str, Any], bytes, bytes, bytes, bytes]:
    try:
        doc = json.loads(blob)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError("文件不是数据集（无法解析 JSON）") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DatasetError(f"文件不是 {FORMAT} 格式的数据集")
    header = doc.get("header")
    wanted = {
        "dataset_id",
        "area",
        "level",
        "source",
        "created_at",
        "records",
        "recipient",
        "signer",
    }
    if not isinstance(header, dict) or set(header) != wanted:
        raise DatasetError("数据集文件头不完整或含有未知字段")
    return (
        header,
        _unb64(doc.get("ephemeral"), "ephemeral"),
        _unb64(doc.get("nonce"), "nonce"),
        _unb64(doc.get("ciphertext"), "ciphertext"),
        _unb64(doc.get("signature"), "signature"),
    )


def import_dataset(
    session: Session,
    blob: bytes,
    *,
    trusted_signers: list[str],
    own_keys: dict[int, UploadPrivateKey],
    now: datetime,
    progress: Callable[[int], None] = lambda n: None,
) -> ImportResult:
    header, ephemeral, nonce, ciphertext, signature = _parse(blob)
    signer_hex = str(header["signer"])
    if signer_hex not in trusted_signers:
        raise DatasetError(
            f"数据集由未受信任的密钥签名（来源 {header['source']}）：请用 --trust 指定下级的密钥文件"
        )
    try:
        verify_ed25519(
            licence_public_from_bytes(bytes.fromhex(signer_hex)),
            _signing_input(header, ephemeral, nonce, ciphertext),
            signature,
        )
    except (SignatureError, CryptoError, ValueError) as exc:
        raise DatasetError(
            "数据集签名无效：文件在传输中被改动或不是该来源签发，未导入任何记录"
        ) from exc
    existing = session.get(ImportedDataset, str(header["dataset_id"]))
    if existing is not None:
        return ImportResult(
            existing.dataset_id, existing.area, existing.source, 0, existing.records, True
        )
    keys = [k for k in own_keys.values() if upload_public_bytes(k).hex() == header["recipient"]]
    if not keys:
        raise DatasetError(
            "数据集不是加密给本中心的（接收方密钥不符）：请让下级用本中心的密钥文件重新导出"
        )
    try:
        body = gzip.decompress(
            open_dataset(keys[0], ephemeral, nonce, ciphertext, _canonical(header))
        )
    except (SealError, OSError, EOFError) as exc:
        raise DatasetError("数据集无法解密，未导入任何记录") from exc
    if hashlib.sha256(body).hexdigest() != header["dataset_id"]:
        raise DatasetError("数据集内容与文件头不符，未导入任何记录")
    area = str(header["area"])
    rows = [json.loads(line) for line in body.decode().splitlines() if line]
    if len(rows) != header["records"]:
        raise DatasetError("数据集记录数与文件头不符，未导入任何记录")
    held: dict[str, str] = {}
    ids = [r["record_id"] for r in rows]
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        held.update(
            session.execute(
                select(ImportedRecord.record_id, ImportedRecord.content_hash).where(
                    ImportedRecord.record_id.in_(chunk)
                )
            ).all()
        )
        held.update(
            session.execute(
                select(Record.record_id, Record.content_hash).where(Record.record_id.in_(chunk))
            ).all()
        )
    new: list[dict[str, Any]] = []
    unchanged = 0
    for row in rows:
        if not str(row["township_code"]).startswith(area):
            raise DatasetError(
                f"记录 {row['record_id']} 不属于数据集声明的地区 {area}，未导入任何记录"
            )
        if row["record_id"] in held:
            if held[row["record_id"]] != row["content_hash"]:
                raise DatasetError(
                    f"记录 {row['record_id']} 已以不同内容存在，未导入任何记录；请与下级核对该记录"
                )
            unchanged += 1
            continue
        new.append(
            {
                "record_id": row["record_id"],
                "dataset_id": header["dataset_id"],
                "township_code": row["township_code"],
                "category": row["category"],
                "id_number": row["id_number"],
                "content_hash": row["content_hash"],
                "approved_level": header["level"],
                "payload": row["payload"],
            }
        )
    session.add(
        ImportedDataset(
            dataset_id=header["dataset_id"],
            area=area,
            source=str(header["source"])[:64],
            level=str(header["level"]),
            records=len(rows),
            created_at=datetime.fromisoformat(str(header["created_at"])),
            imported_at=now,
        )
    )
    session.flush()
    for start in range(0, len(new), 1000):
        session.execute(insert(ImportedRecord), new[start : start + 1000])
        progress(len(new[start : start + 1000]))
    return ImportResult(
        str(header["dataset_id"]), area, str(header["source"]), len(new), unchanged, False
    )
