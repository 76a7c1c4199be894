"""A comparison's findings turned into tasks for the townships by a named admin, with the
admin's own role and area (``controller.records.tasks`` holds the tasks themselves)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from controller.accounts.admins import AdminIdentity
from controller.db.models import AdminUser
from controller.records.tasks import TasksMade, make_tasks
from muster.errors import NotFoundError

__all__ = ["admin_named", "tasks_from_run"]


def admin_named(session: Session, username: str) -> AdminIdentity:
    user = session.get(AdminUser, username)
    if user is None or user.disabled_at is not None:
        raise NotFoundError(
            f"没有可用的管理员 {username!r}：请用 --as 给出县级管理员的用户名"
            "（muster controller admin list 可查看）"
        )
    return AdminIdentity(user.username, user.role, user.region_prefix)


def tasks_from_run(
    session: Session, run_id: int, username: str, now: datetime, *, township: str = ""
) -> TasksMade:
    """``make_tasks`` as the admin ``username``: their scope decides what is sent."""
    return make_tasks(session, run_id, admin_named(session, username), now, township=township)
