"""Carrying a replaced device's unacknowledged records to its successor, still sealed.

The whole design (why the new device cannot read them and why the controller accepts them only
from the registered successor) is in ``controller/devices/replacement.py``. This module is the device
side: ``export_outbox`` reads the old outbox and certificate into an ``OutboxExport`` file;
``import_outbox`` checks that file and puts its records into the new outbox unchanged. Neither
touches a private key or decrypts anything.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.message import DecodeError

from edge.identity import IdentityStore
from edge.outbox import Outbox
from muster.clock import Clock
from muster.crypto import content_hash, verify_record, write_public_file
from muster.crypto.pki import (
    certificate_der,
    common_name,
    device_public_key,
    load_certificate,
    load_certificates,
    verify_issued_by_any,
)
from muster.errors import CertificateError, ConfigError, SignatureError
from muster.v1 import data_pb2

MAGIC = b"MUSTER-OUTBOX-EXPORT-1\n"


@dataclass(frozen=True, slots=True)
class ExportResult:
    device_id: str
    records: int
    path: Path


@dataclass(frozen=True, slots=True)
class ImportResult:
    predecessor_id: str
    added: int
    already_present: int


def export_outbox(old_state_dir: Path, out: Path, *, now: datetime) -> ExportResult:
    """Write the old device's still-unacknowledged sealed records to ``out``."""
    store = IdentityStore(old_state_dir)
    outbox_path = old_state_dir / "outbox.sqlite3"
    if not outbox_path.exists():
        raise ConfigError(
            f"{outbox_path} 不存在：--state-dir 应指向旧设备的状态目录 (no outbox there)"
        )
    enrolment = store.enrolment()
    try:
        cert = load_certificate(store.cert_path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"旧设备证书 {store.cert_path} 不存在 (certificate missing)") from None
    # Read-only: the old disk is evidence, and nothing here should change it.
    db = sqlite3.connect(f"file:{outbox_path}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT sealed FROM records WHERE state = 'sealed' ORDER BY seq"
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"旧设备的待上传库无法读取：{exc}") from exc
    finally:
        db.close()
    export = data_pb2.OutboxExport(
        device_id=enrolment.device_id,
        township_code=enrolment.township_code,
        certificate_der=certificate_der(cert),
        records=[data_pb2.SealedRecord.FromString(bytes(blob)) for (blob,) in rows],
    )
    export.exported_at.FromDatetime(now.astimezone(UTC))
    write_public_file(out, MAGIC + export.SerializeToString())
    return ExportResult(enrolment.device_id, len(export.records), out)


def read_export(path: Path) -> data_pb2.OutboxExport:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"导出文件 {path} 不存在 (export file not found)") from None
    if not data.startswith(MAGIC):
        raise ConfigError(f"{path} 不是 muster 导出的待上传记录文件 (not an outbox export)")
    try:
        return data_pb2.OutboxExport.FromString(data[len(MAGIC) :])
    except DecodeError as exc:
        raise ConfigError(f"{path} 已损坏，请重新导出 (export file is damaged)") from exc


def check_export(
    export: data_pb2.OutboxExport, trust_bundle: bytes, *, own_device_id: str, now: datetime
) -> None:
    """Refuse an export whose certificate or any record's signature does not hold."""
    try:
        cert = load_certificate(export.certificate_der)
        issuer_ok = verify_issued_by_any(cert, load_certificates(trust_bundle), now=now)
    except CertificateError as exc:
        raise ConfigError(
            f"导出文件中的证书不是本中心签发的：{exc} (the export's certificate is not ours)"
        ) from exc
    if issuer_ok != export.device_id or common_name(cert) != export.device_id:
        raise ConfigError("导出文件中的证书与设备编号不符 (certificate does not name the device)")
    if export.device_id == own_device_id:
        raise ConfigError("这是本机自己的记录，无需导入 (the export is from this very device)")
    key = device_public_key(cert)
    for sealed in export.records:
        if sealed.device_id != export.device_id:
            raise ConfigError(
                f"记录 {sealed.record_id} 不属于设备 {export.device_id}，整个文件不予导入"
            )
        try:
            verify_record(sealed, key)
        except SignatureError as exc:
            raise ConfigError(
                f"记录 {sealed.record_id} 的签名无效（文件被改动过），整个文件不予导入"
            ) from exc


def import_outbox(path: Path, new_state_dir: Path, *, clock: Clock) -> ImportResult:
    """Check an export and add its records, unopened, to this device's outbox."""
    store = IdentityStore(new_state_dir)
    enrolment = store.enrolment()
    export = read_export(path)
    if export.township_code != enrolment.township_code:
        raise ConfigError(
            f"导出文件属于乡镇 {export.township_code}，本机属于 {enrolment.township_code}："
            "只能接替同一乡镇的设备 (a successor must belong to the same township)"
        )
    check_export(
        export, store.ca_path.read_bytes(), own_device_id=enrolment.device_id, now=clock.now()
    )
    outbox = Outbox(new_state_dir / "outbox.sqlite3", clock=clock, min_disk_free_bytes=0)
    try:
        present = _ids(outbox.path)
        added = 0
        for sealed in export.records:
            if sealed.record_id in present:
                continue
            outbox.add(sealed, content_hash(sealed))
            added += 1
    finally:
        outbox.close()
    return ImportResult(export.device_id, added, len(export.records) - added)


def _ids(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT record_id FROM records")}
    finally:
        db.close()
