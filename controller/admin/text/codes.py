"""Text of the enrolment-code page: (Simplified Chinese, English) per key."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "codes_title": ("设备注册码", "Enrolment codes"),
    "codes_new": ("新建注册码", "New code"),
    "codes_township": ("乡镇代码（12位）", "Township (12 digits)"),
    "codes_profile": ("设备型号", "Profile"),
    "codes_valid": ("有效期", "Valid for"),
    "codes_hours": ("小时", "hours"),
    "codes_create": ("生成", "Create"),
    "codes_created": (
        "新注册码（只显示这一次，请抄下或扫码）",
        "New code (shown only now: copy it or scan it)",
    ),
    "codes_single": (
        "只能注册一台设备。技术人员在设备上运行：",
        "Enrols one device only. On the device the technician runs:",
    ),
    "codes_list": ("已发放的注册码", "Codes issued"),
    "codes_id": ("编号", "Id"),
    "codes_created_at": ("发放时间", "Created"),
    "codes_expires": ("有效期至", "Expires"),
    "codes_status": ("状态", "Status"),
    "codes_unused": ("未使用", "unused"),
    "codes_used": ("已使用", "used"),
    "codes_expired": ("已过期", "expired"),
    "codes_none": ("尚未发放注册码。", "No code issued yet."),
    "codes_by": ("发放人", "Issued by"),
}
