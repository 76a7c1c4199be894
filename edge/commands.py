"""Commands from the centre, run on the device: each one answered with an ack.

A command arrives on the device's own ``cmd`` topic (QoS 1, persistent session, so one sent while
the device was off arrives when it is back). The handler refuses an expired or unknown command,
runs the rest, and remembers every command id it answered in ``STATE_DIR/commands.json``: the
broker may deliver a command twice, and a repeat gets the same ack again without running twice.

| command        | what the device does                                                   |
|----------------|------------------------------------------------------------------------|
| restart        | acks, then stops cleanly (exit 0) so systemd (``Restart=always``) restarts it |
| set-log-level  | changes the daemon's log level                                          |
| sync-slice     | calls the slice hook; without one it fails, saying there is nothing to sync |
| renew-licence  | calls the renewal hook, else re-checks the licence on disk              |
| revoke         | marks the licence revoked: the device keeps reporting, stops collecting |
| wipe           | acks, stops, then erases identity, outbox ciphertext and slice files    |
| upload-logs    | acks with the tail of the daemon log (redacted, size-capped)            |
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import structlog
from google.protobuf.message import DecodeError

from edge.licence_guard import LicenceGuard
from edge.log_tail import LogTail
from muster import commands as catalogue
from muster.clock import Clock
from muster.crypto import write_public_file
from muster.errors import ConfigError
from muster.v1 import device_pb2

log = structlog.get_logger(__name__)

Ack = device_pb2.CommandAck
JOURNAL_SIZE = 500
# Everything under the state dir that a wipe erases, besides the identity directory.
WIPED_FILES = ("outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm", "commands.json")
WIPED_DIRS = ("identity", "slices")


@dataclass
class CommandHooks:
    """Where other parts of the daemon plug in. A hook returns the ack's message or raises."""

    sync_slice: Callable[[dict[str, str]], Awaitable[str]] | None = None
    renew_licence: Callable[[], Awaitable[str]] | None = None
    on_revoked: Callable[[], None] | None = None


@dataclass(frozen=True)
class Outcome:
    ack: Ack
    # What to do once the ack is on its way (restart and wipe must answer before they act).
    then: str = ""  # "", "restart" or "wipe"


@dataclass
class CommandHandler:
    device_id: str
    state_dir: Path
    guard: LicenceGuard
    log_tail: LogTail
    clock: Clock
    hooks: CommandHooks = field(default_factory=CommandHooks)

    @property
    def journal_path(self) -> Path:
        return self.state_dir / "commands.json"

    def _journal(self) -> dict[str, dict[str, str | int]]:
        try:
            data = json.loads(self.journal_path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _remember(self, ack: Ack) -> None:
        journal = self._journal()
        journal[ack.command_id] = {"result": int(ack.result), "message": ack.message}
        while len(journal) > JOURNAL_SIZE:
            journal.pop(next(iter(journal)))
        write_public_file(self.journal_path, json.dumps(journal, ensure_ascii=False).encode())

    def _ack(
        self, command_id: str, result: Ack.Result.ValueType, message: str, output: str = ""
    ) -> Ack:
        ack = Ack(
            command_id=command_id,
            device_id=self.device_id,
            result=result,
            message=message,
            output=output,
        )
        ack.at.FromDatetime(self.clock.now())
        return ack

    async def handle(self, payload: bytes) -> Outcome | None:
        """The ack for one command payload; None when the payload is not a command at all."""
        try:
            command = device_pb2.Command.FromString(payload)
        except DecodeError:
            log.warning("undecodable command ignored", size=len(payload))
            return None
        if not command.command_id:
            log.warning("command without an id ignored")
            return None
        seen = self._journal().get(command.command_id)
        if seen is not None:
            log.info("command already answered; acking again", command_id=command.command_id)
            return Outcome(self._ack(command.command_id, int(seen["result"]), str(seen["message"])))  # type: ignore[arg-type]
        outcome = await self._run(command)
        self._remember(outcome.ack)
        log.info(
            "command answered",
            command_id=command.command_id,
            kind=catalogue.NAMES.get(command.kind, str(command.kind)),
            result=Ack.Result.Name(outcome.ack.result),
        )
        return outcome

    async def _run(self, command: device_pb2.Command) -> Outcome:
        cid = command.command_id
        now = self.clock.now()
        if command.HasField("expires_at") and command.expires_at.ToDatetime(tzinfo=UTC) < now:
            return Outcome(self._ack(cid, Ack.RESULT_REJECTED, "命令已过期，未执行"))
        kind = catalogue.NAMES.get(command.kind)
        if kind is None:
            return Outcome(self._ack(cid, Ack.RESULT_REJECTED, "设备不认识这个命令，未执行"))
        try:
            arguments = catalogue.validate(kind, dict(command.arguments))
        except ConfigError as exc:
            return Outcome(self._ack(cid, Ack.RESULT_REJECTED, f"参数不对，未执行：{exc}"))
        try:
            return await self._dispatch(cid, kind, arguments)
        except Exception as exc:
            log.exception("command failed", command_id=cid, kind=kind)
            return Outcome(self._ack(cid, Ack.RESULT_FAILED, f"执行失败：{exc}"))

    async def _dispatch(self, cid: str, kind: str, arguments: dict[str, str]) -> Outcome:
        ok = Ack.RESULT_OK
        if kind == "restart":
            return Outcome(self._ack(cid, ok, "设备即将重启"), then="restart")
        if kind == "wipe":
            return Outcome(self._ack(cid, ok, "设备即将停止并清除身份与数据"), then="wipe")
        if kind == "set-log-level":
            self.log_tail.set_level(arguments["level"])
            return Outcome(self._ack(cid, ok, f"日志级别已设为 {arguments['level']}"))
        if kind == "upload-logs":
            size = int(arguments.get("max_bytes", catalogue.MAX_LOG_BYTES))
            tail = self.log_tail.tail(size)
            return Outcome(self._ack(cid, ok, f"已上传最近 {len(tail.encode())} 字节日志", tail))
        if kind == "sync-slice":
            if self.hooks.sync_slice is None:
                return Outcome(self._ack(cid, Ack.RESULT_FAILED, "没有可同步的数据切片"))
            return Outcome(self._ack(cid, ok, await self.hooks.sync_slice(arguments)))
        if kind == "renew-licence":
            if self.hooks.renew_licence is not None:
                return Outcome(self._ack(cid, ok, await self.hooks.renew_licence()))
            verdict = await asyncio.to_thread(self.guard.check)
            if verdict.allowed:
                return Outcome(self._ack(cid, ok, f"授权有效，剩余 {verdict.days_left} 天"))
            return Outcome(self._ack(cid, Ack.RESULT_FAILED, verdict.message))
        if kind == "revoke":
            await asyncio.to_thread(self.guard.mark_revoked)
            if self.hooks.on_revoked is not None:
                self.hooks.on_revoked()
            return Outcome(self._ack(cid, ok, "授权已撤销：设备继续上报，但不再采集"))
        raise AssertionError(f"command {kind} has no handler")  # catalogue and table disagree


def erase_device_state(state_dir: Path) -> list[str]:
    """What a wipe removes once the daemon has stopped: the identity (key, certificate, licence),
    the outbox (only ciphertext by then) and the slices. Returns what was removed."""
    removed: list[str] = []
    for name in WIPED_DIRS:
        path = state_dir / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
    for name in WIPED_FILES:
        path = state_dir / name
        if path.exists():
            path.unlink()
            removed.append(name)
    for path in state_dir.glob("*.slice"):
        path.unlink()
        removed.append(path.name)
    return removed


__all__ = ["CommandHandler", "CommandHooks", "Outcome", "erase_device_state"]
