"""Face templates of a campaign's subjects, made at the centre for the devices' offline check.

For each subject the reference is the photo of the records campaign
(``face_check.reference_photo``); what is kept, and what the slice carries to the township's
devices, is its ``muster.face.Template`` (517 bytes), never the picture. A subject without a
usable reference gets a row with the reason instead (``no_photo``, ``no_face``,
``face_too_small``, ``unreadable``), so the device can tell the clerk why a manual check is
needed. Describing a face costs a few hundred milliseconds of one core: a subject already
described is skipped unless ``refresh`` is asked for, and the caller shows progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.confirmation.face_check import MusterFaceVerifier, reference_photo
from controller.db.models import (
    ConfirmationCampaign,
    ConfirmationFaceTemplate,
    ConfirmationSubject,
)
from muster.confirmation import ConfirmationError, Status
from muster.crypto import UploadPrivateKey
from muster.face import NoFace

__all__ = ["NOTES", "TemplateReport", "compute_templates", "compute_templates_shown"]

NOTES: dict[str, str] = {
    "no_photo": "档案中没有本人照片",
    "no_face": "档案照片中未找到人脸",
    "face_too_small": "档案照片中人脸太小",
    "unreadable": "档案照片无法读取",
    "not_prepared": "中心尚未为本人生成人脸模板",
}


@dataclass
class TemplateReport:
    described: int = 0
    skipped: int = 0
    without: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {"described": self.described, "skipped": self.skipped, "without": self.without}


def compute_templates(
    session: Session,
    campaign: ConfirmationCampaign,
    keys: Mapping[int, UploadPrivateKey],
    *,
    now: datetime,
    verifier: MusterFaceVerifier | None = None,
    refresh: bool = False,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> TemplateReport:
    """Describe the reference photo of every living subject of the campaign not yet described."""
    verifier = verifier or MusterFaceVerifier()
    have = {
        row.id_number: row
        for row in session.scalars(
            select(ConfirmationFaceTemplate).where(
                ConfirmationFaceTemplate.campaign_id == campaign.id
            )
        )
    }
    numbers = session.scalars(
        select(ConfirmationSubject.id_number)
        .where(
            ConfirmationSubject.campaign_id == campaign.id,
            ConfirmationSubject.status != Status.DECEASED.value,
        )
        .order_by(ConfirmationSubject.id_number)
    ).all()
    report = TemplateReport()
    for done, number in enumerate(numbers, 1):
        row = have.get(number)
        if row is not None and not refresh:
            report.skipped += 1
            progress(done, len(numbers))
            continue
        template, note, source = None, "", ""
        try:
            found = reference_photo(session, number, keys)
        except ConfirmationError:
            found, note = None, "unreadable"
        if found is None:
            note = note or "no_photo"
        else:
            source = found[0]
            described = verifier.reference_template(found[1])
            if isinstance(described, NoFace):
                note = "face_too_small" if "small" in described.reason else "no_face"
            else:
                template = described.to_bytes()
        if row is None:
            row = ConfirmationFaceTemplate(campaign_id=campaign.id, id_number=number)
            session.add(row)
        row.template, row.note, row.source, row.computed_at = template, note, source, now
        if template is None:
            report.without[note] = report.without.get(note, 0) + 1
        else:
            report.described += 1
        progress(done, len(numbers))
    return report


def compute_templates_shown(
    session: Session,
    campaign: ConfirmationCampaign,
    keys: Mapping[int, UploadPrivateKey],
    now: datetime,
    refresh: bool = False,
) -> TemplateReport:
    """``compute_templates`` with a progress bar on the terminal (the operator's command)."""
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("人脸模板 / face templates", total=None)
        return compute_templates(
            session,
            campaign,
            keys,
            now=now,
            refresh=refresh,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
