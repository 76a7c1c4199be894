"""Text of signing in and the admin's own page (``/me``): (Simplified Chinese, English) per key."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "login_title": ("管理员登录", "Admin sign-in"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login": ("登录", "Sign in"),
    "logout_title": ("退出登录", "Sign out"),
    "logout_question": ("确定要退出登录吗？", "Sign out of the admin pages?"),
    "logout_button": ("退出", "Sign out"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "my_area": ("管辖范围", "Area"),
    "role": ("角色", "Role"),
    "may": ("可以", "May"),
    "role_ministry": ("部级", "ministry"),
    "role_province": ("省级", "province"),
    "role_city": ("市级", "city"),
    "role_county": ("县级", "county"),
    "role_township": ("乡镇", "township"),
    "role_auditor": ("只读审计", "auditor (read only)"),
    "role_technician": ("技术支持", "technician"),
    "may_read": ("查看", "view"),
    "may_export": ("导出", "export"),
    "may_command": (
        "管理设备（命令、撤销、注册码）",
        "manage devices (commands, revocation, enrolment codes)",
    ),
    "may_declare": ("申报本乡镇采集完成", "declare the township's collection complete"),
    "may_review": ("逐条审核、退回或通过记录", "review, return or approve records"),
    "may_forward": ("接收下级已审核的数据", "take in what the level below reviewed"),
    "may_deadline": ("设置阶段截止时间", "set phase deadlines"),
    "may_dataset": ("导出或导入上报数据集", "export or import report datasets"),
    "may_accounts": (
        "管理本辖区的下级管理员和乡镇用户",
        "manage the admins below you and the township clerks of your area",
    ),
}
