"""Webhooks: admins configure where alerts are posted (app/webhooks/deliveries.py sends them).

Only admins see or change webhooks, since a webhook decides where Strata sends data. The URL
must be http or https: other schemes (file:, gopher:, ...) are refused when it is saved, and
redirects are never followed, so a POST only goes to the address an admin typed. Addresses on
the internal network are allowed on purpose (a company's own chat server); the admin who types
one is trusted with it. The secret is stored as given, because signing needs it, and is
returned only by the request that created it (or that set a new one)."""

import secrets
from urllib.parse import urlsplit

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.alerts.tables import ALERT_KINDS
from app.audit.service import record
from app.auth.tables import User
from app.core.db import run_in_session
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.roles import Role, require_role
from app.core.time import utcnow
from app.webhooks.deliveries import deliver_now, queue_delivery
from app.webhooks.schemas import AttemptOut, DeliveryOut, WebhookCreated, WebhookIn, WebhookOut, WebhookUpdate
from app.webhooks.tables import Webhook, WebhookAttempt, WebhookDelivery

MAX_NAME_LENGTH = 100
MIN_SECRET_LENGTH = 16
MAX_DELIVERIES = 200


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(f"A webhook name is 1 to {MAX_NAME_LENGTH} printable characters.")
    return name


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"A webhook URL starts with http:// or https://; got {url[:60]!r}.")
    if not parts.hostname or any(character.isspace() for character in url):
        raise InvalidInput(f"{url[:60]!r} is not a URL with a host name.")
    return url


def _check_secret(secret: str) -> str:
    if len(secret) < MIN_SECRET_LENGTH or not secret.isprintable():
        raise InvalidInput(f"A webhook secret is at least {MIN_SECRET_LENGTH} printable characters.")
    return secret


def _check_kinds(kinds: list[str]) -> list[str]:
    if not kinds:
        raise InvalidInput(f"A webhook receives at least one alert kind: {', '.join(ALERT_KINDS)}.")
    return [kind for kind in ALERT_KINDS if kind in kinds]


def _audited(webhook: Webhook) -> dict:
    """What the audit log keeps of a webhook: not the URL's path or query, which for Slack and
    most chat tools is itself a credential."""
    parts = urlsplit(webhook.url)
    return {
        "name": webhook.name,
        "url": f"{parts.scheme}://{parts.netloc}/…",
        "enabled": webhook.enabled,
        "kinds": webhook.kinds,
    }


def _get(db_session: Session, webhook_id: int) -> Webhook:
    webhook = db_session.get(Webhook, webhook_id)
    if webhook is None:
        raise NotFound(f"No webhook with id {webhook_id}.")
    return webhook


def _views(db_session: Session, webhooks: list[Webhook]) -> list[WebhookOut]:
    ids = [webhook.id for webhook in webhooks]
    failed = dict(
        db_session.exec(
            select(WebhookDelivery.webhook_id, func.count())
            .where(col(WebhookDelivery.webhook_id).in_(ids), WebhookDelivery.status == "failed")
            .group_by(WebhookDelivery.webhook_id)
        ).all()
    )
    newest = select(WebhookDelivery.webhook_id, func.max(WebhookDelivery.id).label("id")).where(
        col(WebhookDelivery.webhook_id).in_(ids)
    )
    newest = newest.group_by(WebhookDelivery.webhook_id).subquery()
    last_status = dict(
        db_session.exec(
            select(WebhookDelivery.webhook_id, WebhookDelivery.status).join(newest, newest.c.id == WebhookDelivery.id)
        ).all()
    )
    return [
        WebhookOut(
            **webhook.model_dump(
                include={"id", "name", "url", "enabled", "kinds", "created_by", "created_at", "updated_at"}
            ),
            failed_deliveries=failed.get(webhook.id, 0),
            last_delivery_status=last_status.get(webhook.id),
        )
        for webhook in webhooks
    ]


def _flush_named(db_session: Session, name: str) -> None:
    try:
        db_session.flush()
    except IntegrityError:
        raise Conflict(f"A webhook named {name!r} already exists.") from None


def list_webhooks(*, db_session: Session, actor: User) -> list[WebhookOut]:
    require_role(actor, Role.admin)
    return _views(db_session, list(db_session.exec(select(Webhook).order_by(Webhook.name)).all()))


def create_webhook(*, db_session: Session, actor: User, webhook: WebhookIn) -> WebhookCreated:
    """A webhook, with its secret (generated when none is given) shown this once. Admin only."""
    require_role(actor, Role.admin)
    name = _check_name(webhook.name)
    if db_session.exec(select(Webhook.id).where(Webhook.name == name)).first() is not None:
        raise Conflict(f"A webhook named {name!r} already exists.")
    row = Webhook(
        name=name,
        url=_check_url(webhook.url),
        secret=_check_secret(webhook.secret) if webhook.secret is not None else secrets.token_urlsafe(32),
        enabled=webhook.enabled,
        kinds=_check_kinds(webhook.kinds),
        created_by=actor.email,
    )
    db_session.add(row)
    _flush_named(db_session, name)
    record(
        db_session=db_session, actor=actor, action="webhook.created", target=name, target_id=row.id, new=_audited(row)
    )
    return WebhookCreated(**_views(db_session, [row])[0].model_dump(), secret=row.secret)


def update_webhook(*, db_session: Session, actor: User, webhook_id: int, changes: WebhookUpdate) -> WebhookOut:
    """Changes the given fields. Deliveries already queued go to the new URL; disabling a
    webhook stops its pending deliveries. Admin only."""
    require_role(actor, Role.admin)
    row = _get(db_session, webhook_id)
    old = _audited(row)
    if changes.name is not None:
        row.name = _check_name(changes.name)
    if changes.url is not None:
        row.url = _check_url(changes.url)
    if changes.secret is not None:
        row.secret = _check_secret(changes.secret)
    if changes.enabled is not None:
        row.enabled = changes.enabled
    if changes.kinds is not None:
        row.kinds = _check_kinds(changes.kinds)
    row.updated_at = utcnow()
    db_session.add(row)
    _flush_named(db_session, row.name)
    record(
        db_session=db_session,
        actor=actor,
        action="webhook.updated",
        target=row.name,
        target_id=row.id,
        old=old,
        new=_audited(row),
        # The log drops keys naming a secret: it says only that the secret changed.
        detail="The signing secret was replaced." if changes.secret is not None else None,
    )
    return _views(db_session, [row])[0]


def delete_webhook(*, db_session: Session, actor: User, webhook_id: int) -> None:
    """Deletes the webhook and its delivery log. Admin only."""
    require_role(actor, Role.admin)
    row = _get(db_session, webhook_id)
    record(
        db_session=db_session,
        actor=actor,
        action="webhook.deleted",
        target=row.name,
        target_id=row.id,
        old=_audited(row),
    )
    db_session.delete(row)
    db_session.flush()


def list_deliveries(
    *, db_session: Session, actor: User, webhook_id: int | None = None, limit: int = 50
) -> list[DeliveryOut]:
    """Deliveries newest first, each with every attempt (status code or error). Admin only."""
    require_role(actor, Role.admin)
    if not 1 <= limit <= MAX_DELIVERIES:
        raise InvalidInput(f"limit is 1 to {MAX_DELIVERIES}; got {limit}.")
    query = select(WebhookDelivery, Webhook.name).join(Webhook)
    if webhook_id is not None:
        _get(db_session, webhook_id)
        query = query.where(WebhookDelivery.webhook_id == webhook_id)
    return _delivery_views(
        db_session, list(db_session.exec(query.order_by(col(WebhookDelivery.id).desc()).limit(limit)).all())
    )


def _delivery_views(db_session: Session, rows: list[tuple[WebhookDelivery, str]]) -> list[DeliveryOut]:
    attempts: dict[int, list[AttemptOut]] = {}
    if rows:
        delivery_ids = [delivery.id for delivery, _ in rows]
        for attempt in db_session.exec(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(delivery_ids))
            .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
        ).all():
            attempts.setdefault(attempt.delivery_id, []).append(
                AttemptOut.model_validate(attempt, from_attributes=True)
            )
    return [
        DeliveryOut(
            **delivery.model_dump(
                include={
                    "id",
                    "webhook_id",
                    "alert_id",
                    "event",
                    "status",
                    "attempts",
                    "max_attempts",
                    "next_attempt_at",
                    "last_status_code",
                    "last_error",
                    "created_at",
                    "finished_at",
                }
            ),
            webhook=name,
            text=str(delivery.payload.get("text", "")),
            attempt_log=attempts.get(delivery.id, []),
        )
        for delivery, name in rows
    ]


def _queue_test(*, db_session: Session, actor: User, webhook_id: int) -> int:
    require_role(actor, Role.admin)
    webhook = _get(db_session, webhook_id)
    payload = {
        "text": f"Strata test message for webhook {webhook.name!r}, sent by {actor.email}.",
        "event": "test",
        "alert": None,
    }
    return queue_delivery(db_session=db_session, webhook=webhook, event="test", payload=payload).id


async def send_test(*, actor: User, webhook_id: int) -> DeliveryOut:
    """Posts a test message now (also to a disabled webhook, to try it before enabling it) and
    returns the delivery with its first attempt; a failed one is retried like any other. Admin only."""
    delivery_id = await run_in_session(_queue_test, actor=actor, webhook_id=webhook_id)
    await deliver_now(delivery_id=delivery_id)
    return await run_in_session(_delivery, delivery_id=delivery_id)


def _delivery(*, db_session: Session, delivery_id: int) -> DeliveryOut:
    query = select(WebhookDelivery, Webhook.name).join(Webhook).where(WebhookDelivery.id == delivery_id)
    return _delivery_views(db_session, list(db_session.exec(query).all()))[0]
