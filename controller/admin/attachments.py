"""A stored record's photo, signature or scanned sheet, decrypted for the centre.

The chunks stay sealed in the database as the device sent them; this route joins and opens them
with the upload keys on each request and checks the result against the size and SHA-256 the
record names, so what an admin downloads is exactly what the clerk sealed. Region scopes apply
through the ``record_id`` in the path (controller/admin/access.py).

Only a canonical record id (``muster.records.RECORD_ID_PATTERN``) is looked up: anything else
is a 404 before it can reach a header, and ``Content-Disposition`` is built by
:func:`content_disposition` (RFC 6266) whatever it is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker

from controller.records.attachment_open import record_attachment
from muster.crypto import UploadPrivateKey
from muster.errors import NotFoundError, SealError
from muster.records import ATTACHMENT_MEDIA_TYPES, RECORD_ID_PATTERN

_RECORD_ID = re.compile(RECORD_ID_PATTERN)
_PLAIN = re.compile(r"[^A-Za-z0-9._-]")


def content_disposition(kind: str, filename: str) -> str:
    """``kind; filename="..."; filename*=UTF-8''...`` (RFC 6266, RFC 5987): the quoted name
    keeps only letters, digits and ``._-`` (anything else becomes ``_``), the extended one is
    percent-encoded, so no quote, semicolon, CR, LF or NUL of ``filename`` reaches the header."""
    fallback = _PLAIN.sub("_", filename) or "download"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def attachments_router(
    sessions: sessionmaker[Session],
    upload_keys: Callable[[], Mapping[int, UploadPrivateKey]],
) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/api/v1/records/{record_id}/attachments/{name}",
        response_class=Response,
        responses={200: {"content": {t: {} for t in set(ATTACHMENT_MEDIA_TYPES.values())}}},
    )
    def api_attachment(
        record_id: str = Path(description="the record's id, a canonical lower-case UUID"),
        name: str = Path(description="photo.jpg, signature.png or signed_sheet.jpg"),
    ) -> Response:
        if name not in ATTACHMENT_MEDIA_TYPES:
            raise HTTPException(
                404, f"附件名“{name}”无效：可取 {', '.join(sorted(ATTACHMENT_MEDIA_TYPES))}"
            )
        if not _RECORD_ID.fullmatch(record_id):
            raise HTTPException(404, "没有这条记录：记录编号应为小写的 UUID")
        try:
            with sessions() as session:
                data, media_type = record_attachment(session, record_id, name, upload_keys())
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from None
        except SealError as exc:
            raise HTTPException(500, str(exc)) from None
        return Response(
            data,
            media_type=media_type,
            headers={
                "Content-Disposition": content_disposition("inline", f"{record_id}-{name}"),
                "Cache-Control": "no-store",
            },
        )

    return router
