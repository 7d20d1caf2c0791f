"""The admin Webhooks page (/admin/webhooks): webhooks and the delivery log with every failure."""

import reflex as rx

from app.alerts.tables import ALERT_KINDS
from app.ui.confirm import confirm_delete
from app.ui.layout import shell
from app.webhooks.state import DeliveryRow, WebhookRow, WebhooksState

STATUS_COLORS = {"delivered": "green", "pending": "amber", "failed": "red"}


def _status(status: rx.Var[str]) -> rx.Component:
    return rx.badge(status, color_scheme=rx.match(status, *STATUS_COLORS.items(), "gray"), class_name="delivery-status")


def _webhook_buttons(row: WebhookRow) -> rx.Component:
    return rx.hstack(
        rx.button(
            "Send test", size="1", variant="soft", on_click=WebhooksState.send_test(row.id), class_name="webhook-test"
        ),
        rx.cond(
            row.enabled,
            rx.button(
                "Disable",
                size="1",
                variant="soft",
                color_scheme="gray",
                on_click=WebhooksState.switch(row.id, False),
                class_name="webhook-disable",
            ),
            rx.button(
                "Enable",
                size="1",
                variant="soft",
                on_click=WebhooksState.switch(row.id, True),
                class_name="webhook-enable",
            ),
        ),
        confirm_delete(
            rx.button("Delete", size="1", variant="soft", color_scheme="red", class_name="webhook-delete"),
            ["Delete the webhook ", row.name, "?"],
            "Its delivery log goes with it; alerts are no longer sent there.",
            WebhooksState.delete(row.id),
            class_name="webhook-delete-confirm",
        ),
    )


def _webhook_row(row: WebhookRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(
            rx.vstack(
                rx.text(row.name, weight="bold", class_name="webhook-name"),
                rx.code(row.url, size="1", class_name="webhook-url"),
                rx.text(row.created, size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        rx.table.cell(rx.text(row.kinds, size="2")),
        rx.table.cell(
            rx.cond(row.enabled, rx.badge("enabled", color_scheme="green"), rx.badge("disabled", color_scheme="gray"))
        ),
        rx.table.cell(
            rx.vstack(
                rx.cond(row.last_delivery_status, _status(row.last_delivery_status), rx.text("none yet", size="1")),
                rx.cond(
                    row.failed_deliveries,
                    rx.text(
                        row.failed_deliveries, " failed", size="1", color_scheme="red", class_name="webhook-failed"
                    ),
                ),
                spacing="1",
            )
        ),
        rx.table.cell(_webhook_buttons(row)),
        id=f"webhook-{row.id}",
        class_name="webhook-row",
    )


def _webhooks() -> rx.Component:
    return rx.cond(
        WebhooksState.webhooks,
        rx.table.root(
            rx.table.header(
                rx.table.row(*[rx.table.column_header_cell(h) for h in ("Webhook", "Alerts", "", "Last delivery", "")])
            ),
            rx.table.body(rx.foreach(WebhooksState.webhooks, _webhook_row)),
            width="100%",
            id="webhook-list",
        ),
        rx.text("No webhook yet: alerts show only in Strata.", color_scheme="gray", id="webhook-none"),
    )


def _field(label: str, field: str, value: rx.Var[str], element_id: str, placeholder: str, **props) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="bold"),
        rx.input(
            value=value,
            placeholder=placeholder,
            on_change=lambda text: WebhooksState.edit(field, text),
            id=element_id,
            width="100%",
            **props,
        ),
        spacing="1",
        width="100%",
    )


def _kind_checkbox(kind: str) -> rx.Component:
    return rx.checkbox(
        kind.replace("_", " "),
        checked=WebhooksState.form_kinds.contains(kind),
        on_change=lambda checked: WebhooksState.toggle_kind(kind, checked),
        id=f"webhook-kind-{kind}",
    )


def _form() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.heading("Add a webhook", size="4"),
            rx.hstack(
                _field("Name", "form_name", WebhooksState.form_name, "webhook-form-name", "ops-chat"),
                _field(
                    "URL (http or https)",
                    "form_url",
                    WebhooksState.form_url,
                    "webhook-form-url",
                    "https://hooks.slack.com/services/…",
                ),
                _field(
                    "Secret (empty: generate one)",
                    "form_secret",
                    WebhooksState.form_secret,
                    "webhook-form-secret",
                    "at least 16 characters",
                    type="password",
                ),
                width="100%",
                spacing="3",
            ),
            rx.hstack(rx.text("Send", size="2"), *[_kind_checkbox(kind) for kind in ALERT_KINDS], spacing="3"),
            rx.text(
                "Each POST is JSON with a Slack-compatible text field, signed: X-Strata-Signature is sha256= the"
                ' HMAC-SHA256 of "<X-Strata-Timestamp>.<body>" with the secret. Redirects are not followed.',
                size="1",
                color_scheme="gray",
            ),
            rx.button("Add webhook", on_click=WebhooksState.create, id="webhook-create"),
            spacing="3",
            width="100%",
        ),
        width="100%",
    )


def _created_secret() -> rx.Component:
    return rx.cond(
        WebhooksState.created_secret,
        rx.callout.root(
            rx.callout.text(
                "The secret of ",
                WebhooksState.created_name,
                " (shown this once; give it to the receiver): ",
                rx.code(WebhooksState.created_secret, id="webhook-created-secret"),
            ),
            rx.button("I have copied it", size="1", variant="soft", on_click=WebhooksState.dismiss_secret),
            color_scheme="amber",
            width="100%",
        ),
    )


def _delivery_row(row: DeliveryRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.created, size="1")),
        rx.table.cell(rx.text(row.webhook, weight="bold")),
        rx.table.cell(rx.vstack(rx.badge(row.event, variant="outline"), rx.text(row.text, size="1"), spacing="1")),
        rx.table.cell(
            rx.vstack(
                _status(row.status),
                rx.text(row.attempts, " attempts", size="1"),
                rx.cond(row.next_attempt, rx.text("next ", row.next_attempt, size="1", color_scheme="gray")),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.foreach(row.attempt_log, lambda line: rx.text(line, size="1", class_name="delivery-attempt")),
                spacing="1",
            )
        ),
        id=f"delivery-{row.id}",
        class_name="delivery-row",
    )


def _deliveries() -> rx.Component:
    return rx.vstack(
        rx.hstack(
            rx.heading("Delivery log", size="4"),
            rx.button("Refresh", size="1", variant="soft", on_click=WebhooksState.load, id="delivery-refresh"),
            align="center",
        ),
        rx.cond(
            WebhooksState.deliveries,
            rx.table.root(
                rx.table.header(
                    rx.table.row(
                        *[
                            rx.table.column_header_cell(h)
                            for h in ("Queued (UTC)", "Webhook", "Message", "Status", "Attempts")
                        ]
                    )
                ),
                rx.table.body(rx.foreach(WebhooksState.deliveries, _delivery_row)),
                width="100%",
                id="delivery-list",
            ),
            rx.text("Nothing sent yet.", color_scheme="gray", id="delivery-none"),
        ),
        width="100%",
        spacing="3",
    )


def webhooks_page() -> rx.Component:
    return shell("Webhooks", _created_secret(), _webhooks(), _form(), _deliveries())
