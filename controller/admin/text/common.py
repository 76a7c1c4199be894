"""Text of the navigation bar and words every admin page shows: (Simplified Chinese, English) per key."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "app": ("优抚对象信息采集 · 中心管理", "Beneficiary information collection · central admin"),
    "switch": ("English", "中文"),
    "nav_overview": ("设备总览", "Fleet overview"),
    "nav_devices": ("设备列表", "Devices"),
    "nav_alerts": ("告警", "Alerts"),
    "nav_flow": ("数据流", "Data flow"),
    "nav_codes": ("注册码", "Enrolment codes"),
    "nav_progress": ("采集进度", "Progress"),
    "nav_review": ("审核", "Review"),
    "nav_weekly": ("周报", "Weekly report"),
    "nav_deadlines": ("截止时间", "Deadlines"),
    "nav_accounts": ("账号", "Accounts"),
    "nav_audit": ("审核记录", "Review log"),
    "logout": ("退出", "Sign out"),
    "all_regions": ("全国", "All China"),
    "colon": ("：", ": "),
    "list_sep": ("、", ", "),
    "clause_sep": ("；", "; "),
}
