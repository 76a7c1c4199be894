"""The commands a controller may send a device, shared by both ends: their names on the admin side
and in the API, their wire enum, what arguments each takes, and how long one stays valid.

Pure data and validation: no broker, no clock (times are parameters).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from muster.errors import ConfigError
from muster.v1 import device_pb2

Kind = device_pb2.Command.Kind

KINDS: dict[str, Kind.ValueType] = {
    "sync-slice": device_pb2.Command.KIND_SYNC_SLICE,
    "renew-licence": device_pb2.Command.KIND_RENEW_LICENCE,
    "revoke": device_pb2.Command.KIND_REVOKE,
    "wipe": device_pb2.Command.KIND_WIPE,
    "restart": device_pb2.Command.KIND_RESTART,
    "set-log-level": device_pb2.Command.KIND_SET_LOG_LEVEL,
    "upload-logs": device_pb2.Command.KIND_UPLOAD_LOGS,
}
NAMES: dict[int, str] = {value: name for name, value in KINDS.items()}

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# The device caps what upload-logs sends back; the ack must stay a small MQTT message.
MAX_LOG_BYTES = 64 * 1024
DEFAULT_VALIDITY = timedelta(days=7)
MAX_VALIDITY = timedelta(days=30)

# Which arguments each command accepts; anything else is refused before it is stored.
_ARGUMENTS: dict[str, frozenset[str]] = {
    "sync-slice": frozenset({"slice"}),
    "renew-licence": frozenset(),
    "revoke": frozenset({"reason"}),
    "wipe": frozenset({"confirm"}),
    "restart": frozenset(),
    "set-log-level": frozenset({"level"}),
    "upload-logs": frozenset({"max_bytes"}),
}


def validate(kind: str, arguments: dict[str, str]) -> dict[str, str]:
    """The arguments as the device will get them, or ConfigError naming what is wrong."""
    if kind not in KINDS:
        raise ConfigError(f"未知命令 {kind!r}；可用的命令：{', '.join(KINDS)}")
    unknown = set(arguments) - _ARGUMENTS[kind]
    if unknown:
        allowed = ", ".join(sorted(_ARGUMENTS[kind])) or "无"
        raise ConfigError(
            f"命令 {kind} 不接受参数 {', '.join(sorted(unknown))}；它接受的参数：{allowed}"
        )
    clean = {k: str(v).strip() for k, v in arguments.items()}
    if kind == "set-log-level":
        level = clean.get("level", "").upper()
        if level not in LOG_LEVELS:
            raise ConfigError(f"set-log-level 需要参数 level，取值为 {', '.join(LOG_LEVELS)}")
        clean["level"] = level
    if kind == "wipe" and clean.get("confirm") != "yes":
        raise ConfigError("wipe 会清除设备的身份和数据：请加参数 confirm=yes 以确认")
    if kind == "upload-logs" and "max_bytes" in clean:
        try:
            size = int(clean["max_bytes"])
        except ValueError:
            raise ConfigError("upload-logs 的 max_bytes 必须是整数") from None
        if not 1 <= size <= MAX_LOG_BYTES:
            raise ConfigError(f"upload-logs 的 max_bytes 必须在 1 到 {MAX_LOG_BYTES} 之间")
    return clean


def validity(expires_in: timedelta | None) -> timedelta:
    if expires_in is None:
        return DEFAULT_VALIDITY
    if not timedelta(seconds=1) <= expires_in <= MAX_VALIDITY:
        raise ConfigError(f"命令有效期必须在 1 秒到 {MAX_VALIDITY.days} 天之间")
    return expires_in


def build(
    command_id: str,
    kind: str,
    arguments: dict[str, str],
    *,
    issued_at: datetime,
    expires_at: datetime,
) -> device_pb2.Command:
    message = device_pb2.Command(command_id=command_id, kind=KINDS[kind], arguments=arguments)
    message.issued_at.FromDatetime(issued_at)
    message.expires_at.FromDatetime(expires_at)
    return message


__all__ = [
    "DEFAULT_VALIDITY",
    "KINDS",
    "LOG_LEVELS",
    "MAX_LOG_BYTES",
    "NAMES",
    "build",
    "validate",
    "validity",
]
