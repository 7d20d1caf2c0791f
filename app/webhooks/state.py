"""The admin Webhooks page: webhooks (add, enable or disable, send a test, delete) and the
delivery log with every attempt's result. Admin only, like the domain."""

from dataclasses import dataclass
from datetime import datetime

import reflex as rx

from app.alerts.tables import ALERT_KINDS
from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.roles import Role
from app.webhooks import service
from app.webhooks.schemas import DeliveryOut, WebhookIn, WebhookOut, WebhookUpdate

FORM_FIELDS = ("form_name", "form_url", "form_secret")
DELIVERIES_SHOWN = 100


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else ""


@dataclass
class WebhookRow:
    id: int
    name: str
    url: str
    enabled: bool
    kinds: str
    created: str
    failed_deliveries: int
    last_delivery_status: str


@dataclass
class DeliveryRow:
    id: int
    webhook: str
    event: str
    text: str
    status: str
    attempts: str
    last_result: str
    created: str
    next_attempt: str
    # One line per attempt: "#1 2026-01-01 10:00:00 UTC: HTTP 500 ..." (the page lists them).
    attempt_log: list[str]


def _webhook_row(webhook: WebhookOut) -> WebhookRow:
    return WebhookRow(
        id=webhook.id,
        name=webhook.name,
        url=webhook.url,
        enabled=webhook.enabled,
        kinds=", ".join(kind.replace("_", " ") for kind in webhook.kinds),
        created=f"{_when(webhook.created_at)} by {webhook.created_by}",
        failed_deliveries=webhook.failed_deliveries,
        last_delivery_status=webhook.last_delivery_status or "",
    )


def _result(status_code: int | None, error: str | None) -> str:
    if error:
        return error
    return f"HTTP {status_code}" if status_code is not None else ""


def _delivery_row(delivery: DeliveryOut) -> DeliveryRow:
    return DeliveryRow(
        id=delivery.id,
        webhook=delivery.webhook,
        event=delivery.event,
        text=delivery.text,
        status=delivery.status,
        attempts=f"{delivery.attempts} of {delivery.max_attempts}",
        last_result=_result(delivery.last_status_code, delivery.last_error),
        created=_when(delivery.created_at),
        next_attempt=_when(delivery.next_attempt_at) if delivery.status == "pending" else "",
        attempt_log=[
            f"#{attempt.number} {_when(attempt.at)}: {_result(attempt.status_code, attempt.error)}"
            f" ({attempt.duration_ms:.0f} ms)"
            for attempt in delivery.attempt_log
        ],
    )


def _page_rows(*, db_session, actor) -> tuple[list[WebhookRow], list[DeliveryRow]]:
    webhooks = service.list_webhooks(db_session=db_session, actor=actor)
    deliveries = service.list_deliveries(db_session=db_session, actor=actor, limit=DELIVERIES_SHOWN)
    return [_webhook_row(webhook) for webhook in webhooks], [_delivery_row(delivery) for delivery in deliveries]


class WebhooksState(AuthState):
    webhooks: list[WebhookRow] = []
    deliveries: list[DeliveryRow] = []
    form_name: str = ""
    form_url: str = ""
    form_secret: str = ""
    form_kinds: list[str] = list(ALERT_KINDS)
    # The new webhook's secret, shown once until dismissed (it is never readable again).
    created_secret: str = ""
    created_name: str = ""

    async def _reload(self) -> None:
        self.webhooks, self.deliveries = await run_in_session(_page_rows, actor=acting_user())

    @rx.event
    @guarded(Role.admin)
    async def load(self):
        await self._reload()

    @rx.event
    @guarded(Role.admin)
    async def edit(self, field: str, value: str):
        if field in FORM_FIELDS:
            setattr(self, field, str(value)[:2000])

    @rx.event
    @guarded(Role.admin)
    async def toggle_kind(self, kind: str, checked: bool):
        if kind in ALERT_KINDS:
            chosen = (set(self.form_kinds) | {kind}) if checked else (set(self.form_kinds) - {kind})
            self.form_kinds = [each for each in ALERT_KINDS if each in chosen]

    @rx.event
    @guarded(Role.admin)
    async def create(self):
        created = await run_in_session(
            service.create_webhook,
            actor=acting_user(),
            webhook=WebhookIn(
                name=self.form_name,
                url=self.form_url,
                secret=self.form_secret.strip() or None,
                kinds=self.form_kinds,
            ),
        )
        self.form_name = self.form_url = self.form_secret = ""
        self.form_kinds = list(ALERT_KINDS)
        self.created_name, self.created_secret = created.name, created.secret
        await self._reload()
        return rx.toast.success(f"Added webhook {created.name}. Copy its secret now: it is not shown again.")

    @rx.event
    @guarded(Role.admin)
    async def dismiss_secret(self):
        self.created_secret = self.created_name = ""

    @rx.event
    @guarded(Role.admin)
    async def switch(self, webhook_id: int, enabled: bool):
        try:
            webhook = await run_in_session(
                service.update_webhook,
                actor=acting_user(),
                webhook_id=int(webhook_id),
                changes=WebhookUpdate(enabled=bool(enabled)),
            )
        finally:
            await self._reload()
        return rx.toast.info(f"{'Enabled' if webhook.enabled else 'Disabled'} {webhook.name}.")

    @rx.event
    @guarded(Role.admin)
    async def send_test(self, webhook_id: int):
        try:
            delivery = await service.send_test(actor=acting_user(), webhook_id=int(webhook_id))
        finally:
            await self._reload()
        if delivery.status == "delivered":
            return rx.toast.success(f"Test message delivered to {delivery.webhook} (HTTP {delivery.last_status_code}).")
        return rx.toast.error(
            f"Test message to {delivery.webhook} failed: {delivery.last_error}. It will be retried; see the log."
        )

    @rx.event
    @guarded(Role.admin)
    async def delete(self, webhook_id: int):
        try:
            await run_in_session(service.delete_webhook, actor=acting_user(), webhook_id=int(webhook_id))
        finally:
            await self._reload()
        return rx.toast.info("Deleted the webhook and its delivery log.")
