"""The words of the S-30 pages (applicant and service centre), Chinese with English."""

from __future__ import annotations

from typing import Final

__all__ = ["TEXT", "lang_of", "text_for"]

TEXT: Final[dict[str, dict[str, str]]] = {
    "zh": {
        "title": "军人退役一件事",
        "intro": "一张表、一套材料，一次提交，相关部门分别办理，办理结果和到场时间在这里告知。",
        "start": "开始申请",
        "resume": "继续我的申请",
        "items": "办理事项",
        "choose": "更新事项",
        "form": "登记表",
        "materials": "申请材料",
        "materials_hint": "每份材料只需上传一次，需要它的事项都会用到。PDF、JPG 或 PNG，不超过 5 MB。",
        "uploaded": "已上传",
        "not_uploaded": "未上传",
        "upload": "上传",
        "save": "保存草稿",
        "submit": "提交申请",
        "saved": "草稿已保存",
        "submitted": "申请已提交，各事项已推送至相关部门",
        "problems": "请修改以下内容后再提交：",
        "status": "办理进度",
        "application": "申请编号",
        "item": "事项",
        "state": "状态",
        "what_to_do": "说明",
        "history": "经过",
        "refresh": "刷新",
        "choose_first": "请先选择办理事项",
        "not_found": "找不到这份申请；请重新开始，或到退役军人服务中心办理。",
        "bad_origin": "请求来源不是本站，已拒绝。",
        "too_large": "文件超过 5 MB，请压缩后再上传。",
        "lang_switch": "English",
        "optional": "选填",
    },
    "en": {
        "title": "Leaving the army, one application",
        "intro": "One form, one set of materials, submitted once; each department handles its "
        "item and you are told here where and when to come.",
        "start": "Start an application",
        "resume": "Continue my application",
        "items": "Items",
        "choose": "Update items",
        "form": "Registration form",
        "materials": "Materials",
        "materials_hint": "Upload each material once; every item that needs it uses it. PDF, "
        "JPG or PNG, at most 5 MB.",
        "uploaded": "uploaded",
        "not_uploaded": "not uploaded",
        "upload": "Upload",
        "save": "Save draft",
        "submit": "Submit",
        "saved": "Draft saved",
        "submitted": "Submitted; each item has been sent to its department",
        "problems": "Please correct these before submitting:",
        "status": "Progress",
        "application": "Application",
        "item": "Item",
        "state": "State",
        "what_to_do": "What it means",
        "history": "History",
        "refresh": "Refresh",
        "choose_first": "Choose the items first",
        "not_found": "This application was not found; start again or go to the service centre.",
        "bad_origin": "The request did not come from this site; refused.",
        "too_large": "The file is larger than 5 MB; make it smaller and upload again.",
        "lang_switch": "中文",
        "optional": "optional",
    },
}


def lang_of(value: str | None) -> str:
    return "en" if value == "en" else "zh"


def text_for(lang: str) -> dict[str, str]:
    return TEXT[lang_of(lang)]
