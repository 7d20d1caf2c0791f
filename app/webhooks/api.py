"""Webhooks over HTTP, for admins: configure them, send a test, read the delivery log."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from app.auth.deps import AdminUser, SessionDep
from app.webhooks import service
from app.webhooks.schemas import DeliveryOut, WebhookCreated, WebhookIn, WebhookOut, WebhookUpdate

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.get("")
def list_webhooks(user: AdminUser, db_session: SessionDep) -> list[WebhookOut]:
    """Every webhook (never its secret), with its count of failed deliveries."""
    return service.list_webhooks(db_session=db_session, actor=user)


@router.post("", status_code=status.HTTP_201_CREATED)
def create_webhook(body: WebhookIn, user: AdminUser, db_session: SessionDep) -> WebhookCreated:
    """Alerts of the chosen kinds are POSTed to `url` as JSON (Slack-compatible `text` plus the
    alert's fields), signed: X-Strata-Signature is sha256=<hex HMAC-SHA256 of
    "<X-Strata-Timestamp>.<body>"> with the secret. The answer holds the secret (generated when
    none is given), this once. A URL that is not http(s) is a 422; a name in use a 409."""
    return service.create_webhook(db_session=db_session, actor=user, webhook=body)


@router.patch("/{webhook_id}")
def update_webhook(webhook_id: int, body: WebhookUpdate, user: AdminUser, db_session: SessionDep) -> WebhookOut:
    return service.update_webhook(db_session=db_session, actor=user, webhook_id=webhook_id, changes=body)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: int, user: AdminUser, db_session: SessionDep) -> None:
    service.delete_webhook(db_session=db_session, actor=user, webhook_id=webhook_id)


@router.post("/{webhook_id}/test")
async def send_test(webhook_id: int, user: AdminUser) -> DeliveryOut:
    """Posts a test message now and answers with its delivery and first attempt; a failure is
    retried later like an alert's."""
    return await service.send_test(actor=user, webhook_id=webhook_id)


@router.get("/deliveries")
def list_deliveries(
    user: AdminUser,
    db_session: SessionDep,
    webhook: Annotated[int | None, Query(description="One webhook's deliveries, by id")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_DELIVERIES)] = 50,
) -> list[DeliveryOut]:
    """Deliveries newest first, with every attempt's status code or error."""
    return service.list_deliveries(db_session=db_session, actor=user, webhook_id=webhook, limit=limit)
