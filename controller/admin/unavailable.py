"""What an admin sees while the database is away (a primary restarting, a failover, the replica
behind a read-only page gone): ``503`` with ``Retry-After`` and a page saying so in Chinese and
English, or for the API a JSON body naming the cause, instead of a bare ``Internal Server
Error``. It is the outermost layer, so it also covers the access control in front of every
route, which reads the session from the database first.

Only errors that mean "cannot reach the database" are answered this way (SQLAlchemy's
``OperationalError``, and ``InterfaceError`` for a connection that died under a query); a broken
query is still a 500 with its traceback in the log."""

from __future__ import annotations

import json

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RETRY_AFTER_S", "DatabaseUnavailable"]

log = structlog.get_logger()

RETRY_AFTER_S = 5

_PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>数据库暂不可用 · database unavailable</title>
<meta http-equiv="refresh" content="{retry}"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>数据库暂时不可用</h1>
<p>中心数据库正在重启或切换，页面将在 {retry} 秒后自动刷新。数据不会丢失：设备的上传会在数据库恢复后继续。
如果几分钟后仍然如此，请联系运维人员检查数据库服务。</p>
<h2 lang="en">The database is unavailable</h2>
<p lang="en">The central database is restarting or failing over; this page reloads in {retry} s.
Nothing is lost: devices keep their uploads until it is back. If this lasts for minutes, ask
operations to check the database service.</p>
</body></html>
"""


class DatabaseUnavailable:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except (OperationalError, InterfaceError) as exc:
            if started:
                raise  # part of a response is out: nothing clean can follow it
            log.warning("admin request while the database is unavailable", error=str(exc.orig))
            await _answer(scope, send)


async def _answer(scope: Scope, send: Send) -> None:
    path = str(scope.get("path", ""))
    accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
    if path.startswith("/api/") or "text/html" not in accept:
        body = json.dumps(
            {
                "error": "database_unavailable",
                "detail": "数据库暂时不可用，请稍后重试 (the database is unavailable; retry shortly)",
                "retry_after_s": RETRY_AFTER_S,
            },
            ensure_ascii=False,
        ).encode()
        kind = b"application/json"
    else:
        body = _PAGE.format(retry=RETRY_AFTER_S).encode()
        kind = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
