"""The regions of an admin's area by name, from the region tree, for the ``<datalist>`` that
turns a page's region-code box into a picker (the box still takes a typed code)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Region

__all__ = ["PICKER_LIMIT", "area_regions", "area_townships"]

# A province holds some 1,800 townships; past this the box is typed into, not scrolled.
PICKER_LIMIT = 5000


def area_regions(
    session: Session, prefix: str, *, min_length: int = 2, limit: int = PICKER_LIMIT
) -> list[tuple[str, str]]:
    """(code, "name · code") of every region of the tree inside ``prefix`` whose code has at
    least ``min_length`` digits, by code."""
    return [
        (code, f"{name} · {code}")
        for code, name in session.execute(
            select(Region.code, Region.name)
            .where(Region.code.startswith(prefix))
            .order_by(Region.code)
            .limit(limit)
        )
        if len(code) >= min_length
    ]


def area_townships(session: Session, prefix: str) -> list[tuple[str, str]]:
    """The townships of ``prefix`` as 12-digit codes (what a device or enrolment code takes)."""
    return [
        (code + "000", label)
        for code, label in area_regions(session, prefix, min_length=9)
        if len(code) == 9
    ]
