"""Admin page text: Simplified Chinese by default, English with ``?lang=en``."""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "采集设备总览",
        "devices": "设备",
        "online": "在线",
        "offline": "离线",
        "device_id": "设备编号",
        "township": "乡镇代码",
        "profile": "型号配置",
        "state": "状态",
        "last_seen": "最后联系",
        "records": "已接收记录",
        "outbox": "待上传",
        "licence": "授权剩余天数",
        "collection": "采集",
        "allowed": "允许",
        "refused": "拒绝",
        "never": "从未",
        "switch": "English",
        "refreshed": "每5秒自动刷新",
        "none": "尚无设备注册。",
    },
    "en": {
        "title": "Collection devices",
        "devices": "devices",
        "online": "online",
        "offline": "offline",
        "device_id": "Device",
        "township": "Township",
        "profile": "Profile",
        "state": "State",
        "last_seen": "Last seen",
        "records": "Records received",
        "outbox": "Outbox",
        "licence": "Licence days left",
        "collection": "Collection",
        "allowed": "allowed",
        "refused": "refused",
        "never": "never",
        "switch": "中文",
        "refreshed": "refreshes every 5 s",
        "none": "No device has enrolled yet.",
    },
}


def texts(lang: str) -> dict[str, str]:
    return TEXT.get(lang, TEXT["zh"])
