"""Text of the accounts page (the admins and township clerks of the admin's area):
(Simplified Chinese, English) per key."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "title": ("账号管理", "Accounts"),
    "admins": ("管理员", "Admins"),
    "clerks": ("乡镇用户", "Township clerks"),
    "username": ("用户名", "Username"),
    "role": ("角色", "Role"),
    "area": ("地区", "Region"),
    "township_code": ("乡镇", "Township"),
    "display_name": ("姓名", "Name"),
    "password": ("初始密码（至少8位，含字母和数字）", "Initial password (8+ letters and digits)"),
    "status": ("状态", "Status"),
    "active": ("在用", "active"),
    "disabled": ("已停用", "disabled"),
    "disable": ("停用", "Disable"),
    "add_admin": ("新增或重置下级管理员", "Add or reset an admin below you"),
    "add_clerk": ("新增或重置乡镇用户", "Add or reset a township clerk"),
    "save": ("保存", "Save"),
    "saved": ("已保存：{name}", "Saved: {name}"),
    "no_admins": ("本辖区没有管理员。", "No admin in your area."),
    "no_clerks": ("本辖区没有乡镇用户。", "No clerk in your area."),
    "region_hint": ("可输入名称或代码", "type a name or a code"),
    "read_only": (
        "您的角色不能管理账号，此页仅供查看。",
        "Your role cannot manage accounts; this page is for reading.",
    ),
    "role_ministry": ("部级", "ministry"),
    "role_province": ("省级", "province"),
    "role_city": ("市级", "city"),
    "role_county": ("县级", "county"),
    "role_township": ("乡镇", "township"),
    "role_auditor": ("只读审计", "auditor (read only)"),
    "role_technician": ("技术支持", "technician"),
}
