"""Text of the one-application (S-30) centre pages: the service-centre list, the department
dashboard and an application's tracking page: (Simplified Chinese, English) per key. The
applicant's own words (form, status) are controller/applications/page_text.py's."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "centre": ("服务中心代办", "Service centre"),
    "new": ("为在场的申请人新建申请", "New application for the applicant present"),
    "dashboard": ("部门办理看板", "Department dashboard"),
    "scope": ("管辖范围", "Area"),
    "nation": ("全国", "nation"),
    "name": ("姓名", "Name"),
    "township": ("乡镇", "Township"),
    "entered_by": ("录入人", "Entered by"),
    "department": ("部门", "Department"),
    "waiting": ("待办", "Waiting"),
    "overdue": ("超期", "Overdue"),
    "pending": ("待送达", "To deliver"),
    "by_state": ("各状态", "By state"),
    "disabled": ("已停用", "disabled"),
    "due": ("应办结", "Due"),
    "attempts": ("送达次数", "Attempts"),
    "outside": (
        "不在您的管辖范围内，请填写本辖区的乡镇代码",
        "outside your area; enter a township of your area",
    ),
}
