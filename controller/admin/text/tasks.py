"""Text of the comparison-tasks page (S-10): (Simplified Chinese, English) per key. A task's
kind is ``kind_<kind>``, its status ``status_<status>`` (the Chinese ones are
``controller.records.tasks.STATUS_NAMES``; tests/unit/test_admin_text.py checks they agree)."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "title": ("比对任务", "Comparison tasks"),
    "progress": ("任务关闭进度", "Task closure by region"),
    "region": ("地区", "Region"),
    "sent": ("待乡镇处理", "With the township"),
    "closed": ("已关闭", "Closed"),
    "disputed": ("乡镇认为部门有误", "Disputed by the township"),
    "done": ("完成率", "Done"),
    "none": ("本区域还没有任务", "No tasks in this area yet"),
    "tasks": ("任务", "Tasks"),
    "task": ("编号", "Task"),
    "kind": ("类型", "Kind"),
    "kind_problem": ("问题数据", "Problem data"),
    "kind_missing": ("遗漏人员", "Missing person"),
    "person": ("人员", "Person"),
    "department": ("部门", "Department"),
    "status": ("状态", "Status"),
    "status_sent": ("待乡镇处理", "with the township"),
    "status_closed": ("已关闭", "closed"),
    "status_disputed": ("乡镇认为部门有误", "disputed"),
    "record": ("新记录 / 理由", "New record / reason"),
    "make": ("下发任务", "Send tasks"),
    "run": ("比对编号", "Run"),
    "township": ("仅此乡镇（可空）", "Only this township (optional)"),
    "made": (
        "已下发 {created} 项任务（{findings} 条比对结果）；无所属乡镇 {nt} 条、无身份号码 {ni} 条未下发",
        "Sent {created} tasks ({findings} findings); {nt} without a township and {ni} without an ID number were not sent",
    ),
    "runs": ("可下发的比对", "Runs to send"),
}
