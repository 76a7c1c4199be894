"""Text of the department-comparison runs page: (Simplified Chinese, English) per key."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "title": ("部门比对", "Department comparisons"),
    "none": ("本区域还没有比对记录", "No comparison has been run in this area yet"),
    "run_at": ("比对时间", "Run at"),
    "department": ("部门", "Department"),
    "region": ("区域", "Region"),
    "run_by": ("比对人", "Run by"),
    "extract": ("部门数据", "Extract"),
    "source": ("采集数据", "Collected data"),
    "linked": ("匹配（身份号码/概率）", "Linked (ID number / probabilistic)"),
    "problems": ("问题数据", "Problems"),
    "missing": ("遗漏人员", "Missing"),
    "deaths": ("死亡人员", "Deaths"),
    "centre": ("中心已存记录", "records at the centre"),
    "all": ("全部", "all"),
}
