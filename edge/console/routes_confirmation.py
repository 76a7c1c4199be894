"""年度认证 on the console (S-21): the township's visit list from the slice, and per person the
identity card (one-read handoff), live photos from the camera (or, on a tablet whose browser
holds the camera, posted frames), the offline comparison with the centre's face template and
the liveness challenge between frames, the result in plain Chinese, a manual check with a
required reason when the face check fails, then confirm and seal (``confirmation/1`` through
the sealer and outbox). Nothing here needs the centre.

What a clerk has done for a person so far (card read, face check) is kept per session in
memory: a restart of the console only means reading the card and taking the photos again.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException

from edge.card_reads import IdentityRead
from edge.console.deps import Pages, Session
from edge.console.routes_capture import CARD_WAIT_S
from edge.console.visits import (
    BAND_NAMES,
    CHANNEL_NAMES,
    FRAME_GAP_S,
    FRAMES,
    MAX_FRAME_BYTES,
    FaceView,
    VisitDesk,
    band_order,
    confirmation_record,
    filter_visits,
    judge_frames,
    status_name,
)
from muster.confirmation import ConfirmationError, Status, status_zh
from muster.confirmation_record import SCHEMA_VERSION, Checked
from muster.errors import LicenceError, MusterError, StorageError

__all__ = ["confirmation_routes"]

_ID: Final = re.compile(r"^[0-9]{17}[0-9Xx]$")
_MAX_UPLOADED_FRAMES: Final = 6
_STATUSES: Final = ("", "done", *(s.value for s in Status))


@dataclass
class _Progress:
    card: IdentityRead | None = None
    face: FaceView | None = None


def confirmation_routes(pages: Pages) -> APIRouter:
    router = APIRouter()
    s = pages.services
    progress: dict[tuple[str, str], _Progress] = {}

    def desk() -> VisitDesk:
        if s.visits is None:
            raise HTTPException(status_code=404, detail="本机未开通年度认证")
        return s.visits

    def find(id_number: str) -> dict[str, Any]:
        if not _ID.fullmatch(id_number):
            raise HTTPException(
                status_code=404, detail=f"“{id_number[:20]}”不是公民身份号码，请从名单中选择"
            )
        visit = desk().visit(id_number.upper())
        if visit is None:
            raise HTTPException(
                status_code=404,
                detail="此人不在本乡镇的年度认证名单中：请核对身份证号码，或联网同步名单后再试",
            )
        return visit

    def state(session: Session, id_number: str) -> _Progress:
        return progress.setdefault((session.csrf, id_number.upper()), _Progress())

    def channel() -> str:
        return "home_visit" if s.home_visit else "station"

    def person_page(
        request: Request,
        session: Session,
        visit: dict[str, Any],
        *,
        message: str = "",
        error: str = "",
        status_code: int = 200,
        typed: FormData | None = None,
    ) -> HTMLResponse:
        done = state(session, visit["id_number"])
        return pages.render(
            request,
            "confirmation_person.html",
            session,
            status_code=status_code,
            visit=visit,
            band_name=BAND_NAMES.get(visit["age_band"], visit["age_band"]),
            status_name=status_name(visit),
            channel_name=CHANNEL_NAMES[channel()],
            card=done.card,
            face=done.face,
            message=message,
            error=error,
            typed=typed or {},
            frames=FRAMES,
            has_camera=s.capture_photo is not None,
            has_reader=s.read_card is not None,
        )

    @router.get("/confirmation", response_class=HTMLResponse)
    async def visit_list(
        request: Request, channel: str = "", band: str = "", status: str = "", sealed: str = ""
    ) -> HTMLResponse:
        session = pages.require(request)
        if channel not in ("", *CHANNEL_NAMES) or band not in ("", *BAND_NAMES):
            raise HTTPException(status_code=400, detail="筛选条件不对，请从页面上的选项中选择")
        if status not in _STATUSES:
            raise HTTPException(status_code=400, detail="筛选条件不对，请从页面上的选项中选择")
        visits = await asyncio.to_thread(desk().visits)
        shown = filter_visits(visits, channel=channel, band=band, status=status)
        return pages.render(
            request,
            "confirmation_list.html",
            session,
            visits=shown,
            total=len(visits),
            done=sum(1 for v in visits if v["done"]),
            chosen={"channel": channel, "band": band, "status": status},
            bands=band_order(),
            channels=CHANNEL_NAMES,
            statuses=[("done", "本机已确认")]
            + [(st.value, status_zh(st.value)) for st in Status if st is not Status.DECEASED],
            band_names=BAND_NAMES,
            status_name=status_name,
            sealed=sealed,
        )

    @router.get("/confirmation/{id_number}", response_class=HTMLResponse)
    async def person(request: Request, id_number: str) -> HTMLResponse:
        session = pages.require(request)
        visit = await asyncio.to_thread(find, id_number)
        return person_page(request, session, visit)

    @router.post("/confirmation/{id_number}/card", response_class=HTMLResponse)
    async def card(request: Request, id_number: str) -> HTMLResponse:
        session = pages.require(request)
        await pages.posted(request, session)
        visit = await asyncio.to_thread(find, id_number)
        if s.read_card is None:
            return person_page(
                request, session, visit, error="本机没有配置身份证阅读器", status_code=409
            )
        read = await s.read_card(CARD_WAIT_S)
        if read is None:
            return person_page(
                request,
                session,
                visit,
                error=f"{CARD_WAIT_S:.0f} 秒内没有读到身份证：请把证件平放在阅读器上再点“读取身份证”",
                status_code=408,
            )
        if read.id_number.upper() != visit["id_number"]:
            return person_page(
                request,
                session,
                visit,
                error=f"读到的证件号码 {read.id_number} 不是 {visit['name']} 的：请核对是否拿错证件",
                status_code=409,
            )
        state(session, id_number).card = read
        same = read.name == visit["name"]
        note = (
            "姓名与名单一致"
            if same
            else f"证件姓名“{read.name}”与名单“{visit['name']}”不同，请核对"
        )
        return person_page(request, session, visit, message=f"已读取身份证，号码一致；{note}")

    async def frames_from(request: Request, session: Session) -> list[bytes]:
        try:
            form = await pages.posted(
                request, session, max_part_size=MAX_FRAME_BYTES, max_files=_MAX_UPLOADED_FRAMES
            )
        except MultiPartException:
            raise HTTPException(
                status_code=413,
                detail=f"照片太大或张数太多：每张不超过 {MAX_FRAME_BYTES // 1024 // 1024} MB，"
                f"最多 {_MAX_UPLOADED_FRAMES} 张；请重拍",
            ) from None
        uploads = [f for f in form.getlist("frame") if isinstance(f, UploadFile)]
        frames = []
        for upload in uploads:
            data = await upload.read(MAX_FRAME_BYTES + 1)
            if len(data) > MAX_FRAME_BYTES:
                raise HTTPException(
                    status_code=413,
                    detail=f"照片太大：每张不超过 {MAX_FRAME_BYTES // 1024 // 1024} MB；请重拍",
                )
            frames.append(data)
        if frames:
            return frames
        if s.capture_photo is None:
            raise HTTPException(status_code=409, detail="本机没有配置摄像头")
        taken = []
        for index in range(FRAMES):
            if index:
                await s.clock.sleep(FRAME_GAP_S)
            try:
                taken.append((await s.capture_photo()).jpeg)
            except MusterError as exc:
                raise HTTPException(status_code=503, detail=f"拍照失败：{exc}") from None
        return taken

    @router.post("/confirmation/{id_number}/face", response_class=HTMLResponse)
    async def face(request: Request, id_number: str) -> HTMLResponse:
        session = pages.require(request)
        visit = await asyncio.to_thread(find, id_number)
        frames = await frames_from(request, session)
        if len(frames) < 2:
            return person_page(
                request,
                session,
                visit,
                error="活体检测至少需要两张现场照片，请重拍",
                status_code=422,
            )
        try:
            view = await asyncio.to_thread(
                judge_frames, visit["face_template"], visit["face_note"], frames
            )
        except MusterError as exc:
            return person_page(request, session, visit, error=str(exc), status_code=422)
        state(session, id_number).face = view
        # The verdict shows in the face step itself (#face-result), in green or red.
        return person_page(request, session, visit)

    @router.post("/confirmation/{id_number}/seal", response_model=None)
    async def seal(request: Request, id_number: str) -> Response:
        session = pages.require(request)
        form = await pages.posted(request, session)
        visit = await asyncio.to_thread(find, id_number)
        if visit["done"]:
            return person_page(
                request, session, visit, error="本机已为此人封存过认证记录", status_code=409
            )
        done = state(session, id_number)
        death_date = str(form.get("death_date", ""))
        if (
            done.card is None
            and not death_date.strip()
            and not str(form.get("manual_reason", "")).strip()
        ):
            return person_page(
                request,
                session,
                visit,
                error="请先读取本人身份证；没有证件的，请在“人工核验理由”中写明",
                status_code=422,
                typed=form,
            )
        try:
            pages.refuse_if_unlicensed()
            record = confirmation_record(
                record_id=s.new_id(),
                visit=visit,
                township_code=s.township_code,
                channel=channel(),
                face=done.face,
                manual_reason=str(form.get("manual_reason", ""))[:500],
                checked=Checked(
                    name=form.get("checked_name") == "on",
                    id_number=form.get("checked_id_number") == "on" or done.card is not None,
                    phone=form.get("checked_phone") == "on",
                    address=form.get("checked_address") == "on",
                ),
                phone=str(form.get("phone", ""))[:20],
                address=str(form.get("address", ""))[:200],
                living_situation=str(form.get("living_situation", ""))[:1000],
                death_date=death_date[:10],
                death_note=str(form.get("death_note", ""))[:500],
                device_id=desk().device_id,
                clerk=session.clerk.username,
                now=pages.now(),
            )
        except (ConfirmationError, MusterError) as exc:
            return person_page(request, session, visit, error=str(exc), status_code=422, typed=form)
        try:
            await asyncio.to_thread(
                desk().seal_document, record.record_id, SCHEMA_VERSION, record.to_bytes()
            )
        except (LicenceError, StorageError) as exc:
            return person_page(
                request, session, visit, error=f"封存失败：{exc}", status_code=409, typed=form
            )
        await asyncio.to_thread(
            desk().mark_done,
            visit["id_number"],
            {
                "campaign_id": visit["campaign_id"],
                "record_id": record.record_id,
                "at": record.at.isoformat(),
                "clerk": session.clerk.username,
                "death": record.death is not None,
                "face": record.face.outcome.value if record.face else "",
            },
        )
        progress.pop((session.csrf, visit["id_number"]), None)
        s.on_sealed()
        return RedirectResponse(f"/confirmation?sealed={visit['id_number']}", status_code=303)

    return router
