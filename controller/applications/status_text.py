"""What an item's state means to the applicant, in plain words (Chinese, or English with
``lang="en"``): where and when to come and what to bring, what to add, or why not."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from muster.clock import CAMPAIGN_TZ
from muster.one_application import ITEMS, MATERIALS

__all__ = ["STATE_LABELS", "applicant_status", "item_label", "material_label"]

STATE_LABELS: Final[dict[str, tuple[str, str]]] = {
    "unrouted": ("未接入", "not connected"),
    "queued": ("已提交", "submitted"),
    "delivered": ("已送达部门", "delivered"),
    "received": ("部门已接收", "received"),
    "accepted": ("审核通过", "accepted"),
    "more_materials": ("需补充材料", "more materials needed"),
    "rejected": ("未通过", "rejected"),
    "done": ("已办结", "done"),
    "failed": ("送达失败", "delivery failed"),
}


def item_label(code: str, lang: str = "zh") -> str:
    item = ITEMS[code]
    return item.en if lang == "en" else item.zh


def material_label(key: str, lang: str = "zh") -> str:
    spec = MATERIALS.get(key)
    if spec is None:
        return key
    return spec.en if lang == "en" else spec.zh


def _when(at: datetime, lang: str) -> str:
    local = at.astimezone(CAMPAIGN_TZ)
    if lang == "en":
        return f"{local:%Y-%m-%d} at {local:%H:%M}"
    return f"{local.month} 月 {local.day} 日 {local.hour}:{local.minute:02d}"


def applicant_status(
    state: str,
    *,
    message: str = "",
    appointment_at: datetime | None = None,
    place: str = "",
    bring: list[str] | tuple[str, ...] = (),
    wanted: list[str] | tuple[str, ...] = (),
    lang: str = "zh",
) -> str:
    en = lang == "en"
    things = ("、" if not en else ", ").join(material_label(b, lang) for b in bring)
    if state in ("accepted", "done") and appointment_at is not None:
        text = (
            f"Please come to {place} on {_when(appointment_at, lang)}"
            if en
            else f"请于 {_when(appointment_at, lang)} 到{place}办理"
        )
        if things:
            text += f", bringing: {things}" if en else f"，携带：{things}"
        if state == "done":
            text = ("Done. " if en else "已办结。") + text
        return text + ("." if en else "。")
    if state == "more_materials":
        names = ("、" if not en else ", ").join(material_label(w, lang) for w in wanted)
        return (
            f"Please add: {names}. Upload below; it goes to the department again by itself."
            if en
            else f"请补充：{names}。在下方上传后会自动重新提交给部门。"
        )
    if state == "rejected":
        return f"Not approved: {message}" if en else f"未通过：{message}"
    if state == "done":
        return "Done." if en else "已办结。"
    if state == "unrouted":
        return (
            "This item cannot yet be handled online here; the service centre will contact you."
            if en
            else "本地区暂未开通这一事项的线上办理，退役军人服务中心会与您联系。"
        )
    if state == "failed":
        return (
            "It could not be delivered to the department; the service centre will contact you."
            if en
            else "未能送达部门，退役军人服务中心会与您联系。"
        )
    zh, english = STATE_LABELS.get(state, (state, state))
    return (english + ", in progress.") if en else f"{zh}，正在办理。"
