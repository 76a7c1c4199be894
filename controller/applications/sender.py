"""The outbox pump: sends due deliveries to their departments, signed, and records the answer.

A delivery is claimed by moving its ``next_attempt_at`` a lease into the future in one
transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several senders never claim the same
row), then posted, then marked. A sender killed between the post and the mark leaves the row to
come due again when the lease runs out: it is sent again with the same webhook-id and the same
bytes, which the department recognises. So a delivery is never lost and never two deliveries.

2xx marks it sent; 5xx, 408, 429, a timeout or a refused connection schedules a retry after the
delivery's own seeded backoff (:func:`muster.application_wire.delivery_delay`); any other 4xx
fails the item with the department's reason, since sending the same bytes again cannot help.

Departments are reached over HTTPS with the certificate checked against the system's trust
store (or ``SSL_CERT_FILE``, which httpx honours, for a government CA); a certificate that does
not verify is a failed connection, retried like any outage.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from controller.applications.store import record_event
from controller.db.models import ApplicationItem, Delivery, Department, SeenCallback
from muster.application_wire import delivery_delay, retryable_status, sign
from muster.clock import Clock

__all__ = [
    "KEEP_SEEN_S",
    "Claimed",
    "DeliverySender",
    "Outcome",
    "pending_count",
    "prune_seen_callbacks",
]

# Callback ids are kept a week: a department's retry re-signs the same id with a fresh
# timestamp, so an id must outlive its first timestamp's tolerance by the retry horizon.
KEEP_SEEN_S = 7 * 86400
PRUNE_EVERY_S = 3600.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: str
    url: str
    secret: str
    body: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class Outcome:
    id: str
    status: int | None  # None: no HTTP answer (timeout, refused)
    detail: str


class DeliverySender:
    """Sends due deliveries until cancelled; each batch's sends run concurrently."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Clock,
        *,
        client: httpx.AsyncClient | None = None,
        batch: int = 64,
        lease_s: float = 60.0,
        idle_s: float = 1.0,
        timeout_s: float = 10.0,
        backoff_initial_s: float = 2.0,
    ) -> None:
        self.sessions, self.clock = sessions, clock
        self.batch, self.lease_s, self.idle_s = batch, lease_s, idle_s
        self.backoff_initial_s = backoff_initial_s
        # Keep-alive for a whole batch: without it every batch past 20 opens new connections.
        limits = httpx.Limits(max_connections=batch, max_keepalive_connections=batch)
        self._client = client or httpx.AsyncClient(timeout=timeout_s, limits=limits)
        self.sent = 0

    async def run(self) -> None:
        pruned_at = self.clock.monotonic()
        while True:
            if await self.pump_once() == 0:
                await self.clock.sleep(self.idle_s)
            if self.clock.monotonic() - pruned_at >= PRUNE_EVERY_S:
                pruned_at = self.clock.monotonic()
                await asyncio.to_thread(self._prune)

    def _prune(self) -> None:
        with self.sessions.begin() as session:
            prune_seen_callbacks(session, self.clock.now())

    async def pump_once(self) -> int:
        """Claim, send and mark one batch; returns how many were attempted."""
        claimed = await asyncio.to_thread(self._claim)
        if not claimed:
            return 0
        outcomes = await asyncio.gather(*(self._send(c) for c in claimed))
        await asyncio.to_thread(self._mark, outcomes)
        return len(claimed)

    def _claim(self) -> list[Claimed]:
        now = self.clock.now()
        with self.sessions.begin() as session:
            rows = session.execute(
                select(Delivery, Department.url, Department.secret)
                .join(Department, Department.id == Delivery.department_id)
                .where(Delivery.state == "pending", Delivery.next_attempt_at <= now)
                .order_by(Delivery.next_attempt_at)
                .limit(self.batch)
                .with_for_update(skip_locked=True, of=Delivery)
            ).all()
            lease = now + timedelta(seconds=self.lease_s)
            out = []
            for delivery, url, secret in rows:
                delivery.attempts += 1
                delivery.next_attempt_at = lease
                out.append(Claimed(delivery.id, url, secret, delivery.body, delivery.attempts))
            return out

    async def _send(self, claimed: Claimed) -> Outcome:
        headers = sign(claimed.secret, claimed.id, self.clock.now(), claimed.body)
        try:
            answer = await self._client.post(claimed.url, content=claimed.body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(claimed.id, None, "timeout")
        except httpx.TransportError as exc:
            return Outcome(claimed.id, None, f"connection failed: {type(exc).__name__}")
        return Outcome(claimed.id, answer.status_code, answer.text[:200])

    def _mark(self, outcomes: list[Outcome]) -> None:
        now = self.clock.now()
        with self.sessions.begin() as session:
            for outcome in outcomes:
                delivery = session.get(Delivery, outcome.id)
                if delivery is None or delivery.state != "pending":
                    continue
                self._mark_one(session, delivery, outcome, now)

    def _mark_one(
        self, session: Session, delivery: Delivery, outcome: Outcome, now: datetime
    ) -> None:
        item = session.get(ApplicationItem, delivery.item_id, with_for_update=True)
        assert item is not None
        status = outcome.status
        if status is not None and 200 <= status < 300:
            delivery.state, delivery.sent_at, delivery.last_error = "sent", now, ""
            self.sent += 1
            if item.state == "queued":  # a fast department's callback may already be in
                record_event(session, item, "delivered", "controller", "已送达部门", now)
            return
        if status is None or retryable_status(status):
            delay = delivery_delay(delivery.attempts, delivery.id, initial_s=self.backoff_initial_s)
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            delivery.last_error = f"{status or ''} {outcome.detail}".strip()[:300]
            log.info("delivery to retry", delivery=delivery.id, status=status, retry_in_s=delay)
            return
        delivery.state, delivery.last_error = "failed", f"{status} {outcome.detail}"[:300]
        if item.state == "queued":
            record_event(
                session,
                item,
                "failed",
                "department",
                f"部门拒收（{status}）：{outcome.detail}",
                now,
            )

    async def aclose(self) -> None:
        await self._client.aclose()


def pending_count(session: Session) -> int:
    """Deliveries not yet acknowledged by their department."""
    return (
        session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.state == "pending")
        )
        or 0
    )


def prune_seen_callbacks(session: Session, now: datetime) -> int:
    """Forget callback ids older than :data:`KEEP_SEEN_S`; returns how many."""
    cutoff = now - timedelta(seconds=KEEP_SEEN_S)
    result = session.execute(delete(SeenCallback).where(SeenCallback.received_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
