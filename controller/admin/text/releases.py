"""Text of the software releases page: (Simplified Chinese, English) per key. A rollout's or a
device update's state is ``state_<state>``."""

from __future__ import annotations

__all__ = ["TEXT"]

TEXT: dict[str, tuple[str, str]] = {
    "title": ("软件版本与发布", "Software versions and rollouts"),
    "versions": ("各地区设备版本", "Versions by region"),
    "region": ("地区", "Region"),
    "version": ("版本", "Version"),
    "devices": ("设备数", "Devices"),
    "rollouts": ("发布计划", "Rollouts"),
    "state": ("状态", "State"),
    "wave": ("波次", "Wave"),
    "waves": ("各波进度", "Waves"),
    "reason": ("原因", "Reason"),
    "failures": ("最近的失败", "Recent failures"),
    "device": ("设备", "Device"),
    "at": ("时间", "When"),
    "none": ("暂无", "None"),
    "bad_rollout_id": (
        "发布计划编号 {value} 不对，应为发布计划的编号",
        "rollout_id {value} is not a rollout's number",
    ),
    "unknown": ("未上报", "not reported"),
    "all": ("全国", "Nation"),
    "state_running": ("进行中", "running"),
    "state_paused": ("已暂停", "paused"),
    "state_aborted": ("已中止", "aborted"),
    "state_completed": ("已完成", "completed"),
    "state_pending": ("待更新", "pending"),
    "state_downloading": ("下载中", "downloading"),
    "state_verified": ("已校验", "verified"),
    "state_switched": ("已切换", "switched"),
    "state_healthy": ("健康", "healthy"),
    "state_rolled_back": ("已回滚", "rolled back"),
    "state_refused": ("已拒绝", "refused"),
    "state_deferred": ("已推迟", "deferred"),
    "state_unhealthy": ("更新后不健康", "unhealthy after the update"),
    "state_retrying": ("等待重试", "waiting to retry"),
    "state_retry": ("手动重试", "retried by hand"),
}
