"""Webhook deliveries: one durable record per message and webhook, sent by the worker.

- Queued in the transaction that opens the alert (queue_alert_deliveries), so an alert is never
  opened without its deliveries, nor a delivery written for an alert rolled back.
- Sent by the worker's sweep (deliver_due, an arq cron job every few seconds, jobs/worker.py)
  and, for an admin's test, at once by the web (deliver_now). A sender claims a delivery by
  moving its next_attempt_at forward in one compare-and-set UPDATE, so two senders never post
  the same attempt; a sender that dies mid-attempt leaves it to be tried again after the lease.
- Each attempt is a row (status code or error, when, how long). A 2xx answer delivers it; any
  other answer or no answer schedules the next attempt after webhook_retry_seconds * 4^(n-1),
  until webhook_max_attempts, after which the delivery is failed, for the Webhooks page to show.
- Signed: `X-Strata-Timestamp: <unix seconds>` and `X-Strata-Signature: sha256=<hex>`, the
  HMAC-SHA256 with the webhook's secret of "<timestamp>.<body>" (the exact bytes sent); a
  receiver recomputes it and refuses old timestamps to stop replays.
- Redirects are not followed: the URL the admin configured (http or https, checked when it is
  saved) is the only address posted to."""

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.alerts.tables import Alert
from app.core.db import run_in_session
from app.core.settings import get_settings
from app.core.time import utcnow
from app.predict.tables import ModelVersion, RegisteredModel
from app.webhooks.tables import Webhook, WebhookAttempt, WebhookDelivery

log = structlog.get_logger("strata.webhooks")

SIGNATURE_HEADER = "X-Strata-Signature"
TIMESTAMP_HEADER = "X-Strata-Timestamp"
SWEEP_BATCH = 50
MAX_ERROR_LENGTH = 500
DELIVERY = WebhookDelivery.__table__


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Strata-Signature value of a body sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def alert_payload(db_session: Session, alert: Alert) -> dict[str, Any]:
    """The JSON posted for an opened alert: Slack's `text`, and the alert's fields for programs."""
    model = db_session.get(RegisteredModel, alert.model_id)
    version = db_session.get(ModelVersion, alert.version_id) if alert.version_id is not None else None
    model_name = model.name if model else str(alert.model_id)
    where = f"{model_name} v{version.number}" if version else model_name
    return {
        "text": f"Strata alert ({alert.kind.replace('_', ' ')}) on {where}: {alert.message}",
        "event": "alert.opened",
        "alert": {
            "id": alert.id,
            "model": model_name,
            "version": version.number if version else None,
            "kind": alert.kind,
            "statistic": alert.statistic,
            "value": alert.value,
            "threshold": alert.threshold,
            "message": alert.message,
            "opened_at": alert.opened_at.isoformat(),
        },
    }


def queue_delivery(
    *, db_session: Session, webhook: Webhook, event: str, payload: dict[str, Any], alert_id: int | None = None
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        webhook_id=webhook.id,
        alert_id=alert_id,
        event=event,
        payload=payload,
        max_attempts=get_settings().webhook_max_attempts,
    )
    db_session.add(delivery)
    db_session.flush()
    return delivery


def queue_alert_deliveries(*, db_session: Session, alert: Alert) -> list[WebhookDelivery]:
    """One delivery of a newly opened alert per enabled webhook that takes its kind."""
    webhooks = [
        webhook
        for webhook in db_session.exec(select(Webhook).where(col(Webhook.enabled).is_(True))).all()
        if alert.kind in webhook.kinds
    ]
    if not webhooks:
        return []
    payload = alert_payload(db_session, alert)
    return [
        queue_delivery(db_session=db_session, webhook=webhook, event="alert.opened", payload=payload, alert_id=alert.id)
        for webhook in webhooks
    ]


@dataclass(frozen=True)
class ClaimedAttempt:
    delivery_id: int
    number: int
    url: str
    secret: str
    body: bytes


@dataclass(frozen=True)
class AttemptResult:
    claimed: ClaimedAttempt
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def _claim(*, db_session: Session, now: datetime, delivery_ids: list[int] | None) -> list[ClaimedAttempt]:
    """Claims the due pending deliveries (or those of `delivery_ids`, due or not): each claim
    counts the attempt and moves next_attempt_at past the attempt's timeout, so no other sender
    takes it meanwhile. A delivery whose webhook was disabled since is failed instead."""
    settings = get_settings()
    query = select(WebhookDelivery, Webhook).join(Webhook).where(WebhookDelivery.status == "pending")
    if delivery_ids is None:
        query = query.where(col(WebhookDelivery.next_attempt_at) <= now).order_by(col(WebhookDelivery.next_attempt_at))
    else:
        query = query.where(col(WebhookDelivery.id).in_(delivery_ids))
    lease_until = now + timedelta(seconds=settings.webhook_timeout_seconds + 60)
    claimed = []
    for delivery, webhook in db_session.exec(query.limit(SWEEP_BATCH)).all():
        values: dict[str, Any] = {"attempts": delivery.attempts + 1, "next_attempt_at": lease_until}
        # An admin's test goes also to a disabled webhook, to try it before enabling it.
        sendable = webhook.enabled or delivery.event == "test"
        if not sendable:
            values = {
                "status": "failed",
                "next_attempt_at": None,
                "finished_at": now,
                "last_error": "Not sent: the webhook was disabled before this delivery's turn.",
            }
        won = db_session.execute(
            update(DELIVERY)
            .where(
                DELIVERY.c.id == delivery.id,
                DELIVERY.c.status == "pending",
                DELIVERY.c.attempts == delivery.attempts,
            )
            .values(**values)
        ).rowcount
        if won and sendable:
            body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
            claimed.append(ClaimedAttempt(delivery.id, delivery.attempts + 1, webhook.url, webhook.secret, body))
    return claimed


async def _post(client: httpx.AsyncClient, claimed: ClaimedAttempt) -> AttemptResult:
    at = utcnow()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Strata-Webhooks/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(claimed.secret, timestamp, claimed.body),
    }
    started = time.perf_counter()
    status_code, error = None, None
    try:
        response = await client.post(claimed.url, content=claimed.body, headers=headers)
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {response.text[:200]}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return AttemptResult(claimed, at, status_code, error and error[:MAX_ERROR_LENGTH], duration_ms)


def _record(*, db_session: Session, results: list[AttemptResult], now: datetime) -> None:
    retry_seconds = get_settings().webhook_retry_seconds
    for result in results:
        claimed = result.claimed
        db_session.add(
            WebhookAttempt(
                delivery_id=claimed.delivery_id,
                number=claimed.number,
                at=result.at,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
            )
        )
        delivery = db_session.get(WebhookDelivery, claimed.delivery_id)
        if delivery is None:  # its webhook was deleted meanwhile
            continue
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error
        if result.delivered:
            delivery.status, delivery.next_attempt_at, delivery.finished_at = "delivered", None, utcnow()
        elif delivery.attempts >= delivery.max_attempts:
            delivery.status, delivery.next_attempt_at, delivery.finished_at = "failed", None, utcnow()
            log.warning("webhook.failed", delivery_id=delivery.id, attempts=delivery.attempts, error=result.error)
        else:
            delivery.next_attempt_at = now + timedelta(seconds=retry_seconds * 4 ** (delivery.attempts - 1))
        db_session.add(delivery)
    db_session.flush()


async def _send(*, now: datetime | None, delivery_ids: list[int] | None) -> int:
    now = now or utcnow()
    claimed = await run_in_session(_claim, now=now, delivery_ids=delivery_ids)
    if not claimed:
        return 0
    timeout = get_settings().webhook_timeout_seconds
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        results = await asyncio.gather(*(_post(client, attempt) for attempt in claimed))
    await run_in_session(_record, results=list(results), now=now)
    return len(results)


async def deliver_due(*, now: datetime | None = None) -> int:
    """The worker's sweep: one attempt of each delivery due at `now` (default: now). Returns how
    many it attempted."""
    return await _send(now=now, delivery_ids=None)


async def deliver_now(*, delivery_id: int) -> None:
    """An attempt of one pending delivery now, due or not (an admin's test)."""
    await _send(now=None, delivery_ids=[delivery_id])
