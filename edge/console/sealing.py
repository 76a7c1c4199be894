"""The last steps of a record's way through the console (S-07), sans-I/O like
:mod:`edge.console.workflow`: the person signs (on screen, or a scan of the signed sheet), then
the draft becomes the :class:`~muster.records.RecordPayload` the sealer encrypts, with the
attachments it carries.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Final

from edge.console.workflow import Draft, WorkflowError, check, transition
from muster.forms import CURRENT_VERSION
from muster.records import AuditEntry, Person, RecordError, RecordPayload, describe_attachment

__all__ = ["MAX_SCAN_BYTES", "MAX_SIGNATURE_BYTES", "attachments_of", "sign", "to_record"]


MAX_SIGNATURE_BYTES: Final = 200_000
MAX_SCAN_BYTES: Final = 280_000


def sign(
    draft: Draft,
    *,
    clerk: str,
    now: dt.datetime,
    signature_png: bytes | None = None,
    signed_sheet_jpeg: bytes | None = None,
) -> Draft:
    """The person's signature drawn on screen, or a scan of the signed confirmation sheet."""
    transition(draft, "sign")
    if signature_png:
        if not signature_png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise WorkflowError("signature", "签名图像无效，请重新签字")
        if len(signature_png) > MAX_SIGNATURE_BYTES:
            raise WorkflowError("signature", "签名图像过大，请清除后重新签字")
        update = {
            "signature_png": base64.b64encode(signature_png).decode(),
            "signed_sheet_jpeg": "",
        }
        note = "本人在屏幕上签字"
    elif signed_sheet_jpeg:
        if not signed_sheet_jpeg.startswith(b"\xff\xd8"):
            raise WorkflowError("signature", "扫描件须为 JPEG 图片，请重新拍摄签字的确认单")
        if len(signed_sheet_jpeg) > MAX_SCAN_BYTES:
            raise WorkflowError("signature", "扫描件过大（上限 280 KB），请降低分辨率后重新拍摄")
        update = {
            "signed_sheet_jpeg": base64.b64encode(signed_sheet_jpeg).decode(),
            "signature_png": "",
        }
        note = "上传签字确认单扫描件"
    else:
        raise WorkflowError("signature", "请本人在签字框内签字，或上传签字确认单的扫描件")
    entry = AuditEntry(at=now, clerk=clerk, action="signed", note=note)
    return draft.model_copy(
        update={**update, "state": "signed", "updated_at": now, "audit": [*draft.audit, entry]}
    )


def to_record(draft: Draft, *, township_code: str, clerk: str, now: dt.datetime) -> RecordPayload:
    """The record to seal: normalised values, the whole audit, the photo and the signature."""
    transition(draft, "seal")
    checked = check(draft, now.date())
    if checked.problems:
        raise WorkflowError("invalid", checked.problems[0].message)
    p = draft.person
    try:
        attachments = {
            name: describe_attachment(name, data) for name, data in attachments_of(draft).items()
        }
    except RecordError as exc:
        raise WorkflowError("attachment", str(exc)) from None
    return RecordPayload(
        record_id=draft.record_id,
        category=draft.category,  # type: ignore[arg-type]
        form_version=CURRENT_VERSION,
        township_code=township_code,
        person=Person(
            name=p["name"],
            id_number=p["id_number"].strip().upper(),
            sex=p["sex"],
            birth_date=dt.date.fromisoformat(p["birth_date"]),
            ethnicity=p["ethnicity"],
        ),
        fields=checked.values,
        collected_at=now,
        entered_by=draft.entered_by,
        reviewed_by=draft.reviewed_by,
        relation=draft.relation or None,
        audit=(*draft.audit, AuditEntry(at=now, clerk=clerk, action="sealed")),
        attachments=attachments,
    )


def attachments_of(draft: Draft) -> dict[str, bytes]:
    """The photo, signature and scanned sheet a draft holds, as the bytes to seal beside it."""
    encoded = {
        "photo.jpg": draft.photo_jpeg,
        "signature.png": draft.signature_png,
        "signed_sheet.jpg": draft.signed_sheet_jpeg,
    }
    return {name: base64.b64decode(data) for name, data in encoded.items() if data}
