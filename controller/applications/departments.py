"""Departments as configuration: each handles one item kind for a region, at an HTTPS
endpoint, with its own signing secret. Routing picks, per item, the enabled department of
that kind whose region prefix is the longest one the applicant's township starts with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Department
from muster.application_wire import new_secret, sign
from muster.errors import ConfigError, NotFoundError
from muster.one_application import ITEMS

__all__ = ["DepartmentView", "add_department", "disable_department", "list_departments", "route"]


@dataclass(frozen=True, slots=True)
class DepartmentView:
    id: int
    kind: str
    name: str
    url: str
    region_prefix: str
    place: str
    enabled: bool


def _view(d: Department) -> DepartmentView:
    return DepartmentView(d.id, d.kind, d.name, d.url, d.region_prefix, d.place, d.enabled)


def _check_url(url: str, *, allow_http: bool) -> None:
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(
            f"department URL {url!r} must be https://HOST[:PORT]/PATH"
            + (" (or http:// for a local simulator)" if allow_http else "")
        )


def add_department(
    session: Session,
    *,
    kind: str,
    url: str,
    now: datetime,
    name: str = "",
    secret: str = "",
    region_prefix: str = "",
    place: str = "",
    overdue_days: int = 5,
    allow_http: bool = False,
) -> tuple[DepartmentView, str]:
    """Register a department; returns it and its secret (a new one if none was given)."""
    if kind not in ITEMS:
        raise ConfigError(f"unknown department kind {kind!r}; one of: {', '.join(ITEMS)}")
    _check_url(url, allow_http=allow_http)
    if region_prefix and (not region_prefix.isdigit() or len(region_prefix) > 12):
        raise ConfigError(f"region prefix {region_prefix!r} must be up to 12 digits")
    if not 1 <= overdue_days <= 365:
        raise ConfigError("overdue days must be between 1 and 365")
    secret = secret.strip() or new_secret()
    if not secret.startswith("whsec_"):
        raise ConfigError("the secret must be a Standard Webhooks secret (whsec_ + base64)")

    sign(secret, "probe", now, b"{}")  # a secret that cannot sign is refused now, not later
    item = ITEMS[kind]
    department = Department(
        kind=kind,
        name=name or f"{item.agency_zh}（{item.zh}）",
        url=url,
        secret=secret,
        region_prefix=region_prefix,
        place=place or item.agency_zh,
        overdue_days=overdue_days,
        enabled=True,
        created_at=now,
    )
    session.add(department)
    session.flush()
    return _view(department), secret


def list_departments(session: Session) -> list[DepartmentView]:
    return [_view(d) for d in session.scalars(select(Department).order_by(Department.id))]


def disable_department(session: Session, department_id: int) -> DepartmentView:
    department = session.get(Department, department_id)
    if department is None:
        raise NotFoundError(
            f"no department {department_id}; see `muster controller department list`"
        )
    department.enabled = False
    return _view(department)


def route(session: Session, kind: str, township: str) -> Department | None:
    """The department that handles ``kind`` for ``township``, or None if none is set up."""
    candidates = session.scalars(
        select(Department).where(Department.kind == kind, Department.enabled.is_(True))
    )
    best: Department | None = None
    for d in candidates:
        if township.startswith(d.region_prefix) and (
            best is None or len(d.region_prefix) > len(best.region_prefix)
        ):
            best = d
    return best
