"""Cross-site request forgery: what a state-changing request made with the session cookie must
carry besides the cookie.

Two checks, each enough on its own against most browsers, together against the rest:

- **Origin.** A POST, PUT, PATCH or DELETE that comes with the session cookie must name where
  it was started (``Origin``, or failing that ``Referer``) and that must be this very site: the
  host and port the request was sent to (``Host``). A request that names no origin is refused
  too; every browser names one on a form post. The login form is checked when it names one, so
  another site cannot sign a browser in to an account of its choosing.
- **Token.** Every form of the pages carries ``csrf_token`` (``{{ request.state.csrf_token }}``
  in the templates); scripts using the cookie send it as ``X-CSRF-Token``. It is derived from
  the session cookie (SHA-256 over a label and the cookie), so it is the same on every replica
  with no shared secret, ends with the session, and cannot be computed without the cookie,
  which page scripts never see (HttpOnly).

Requests with ``Authorization: Bearer`` carry no cookie a browser would add by itself and need
neither check. Pure functions; controller/admin/access.py applies them.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

from starlette.datastructures import Headers

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "STATE_CHANGING",
    "csrf_problem",
    "csrf_token_for",
    "origin_problem",
]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token_for(cookie: str) -> str:
    """The CSRF token of the session whose cookie is ``cookie``."""
    return hashlib.sha256(b"muster admin csrf\0" + cookie.encode()).hexdigest()


def origin_problem(headers: Headers, *, required: bool) -> str | None:
    """Why the request's origin is not this site, or None when it is (or, unless ``required``,
    when it names none)."""
    named = headers.get("origin") or headers.get("referer") or ""
    if not named:
        if not required:
            return None
        return "跨站请求检查：请求没有 Origin 或 Referer 头，已拒绝；请从本站页面提交"
    host = headers.get("host", "").lower()
    parts = urlsplit(named)
    if named == "null" or parts.scheme not in ("http", "https") or parts.netloc.lower() != host:
        shown = named[:80]
        return f"跨站请求被拒绝：请求来自 {shown}，不是本站 {host[:80]}；请从本站页面提交"
    return None


def csrf_problem(headers: Headers, body: bytes, cookie: str) -> str | None:
    """Why the request's CSRF token is missing or wrong, or None when it is the session's."""
    sent = headers.get(CSRF_HEADER, "")
    if not sent and headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD, [])
        sent = values[-1] if values else ""
    if not sent:
        return "表单缺少安全令牌 (CSRF token)，已拒绝；请刷新页面后重新提交"
    if not hmac.compare_digest(sent.encode(), csrf_token_for(cookie).encode()):
        return "表单的安全令牌 (CSRF token) 不属于当前登录，已拒绝；请刷新页面后重新提交"
    return None
