"""The alerts panel of the Monitoring page (kept in the monitoring domain, whose page shows it): open
alerts and their Acknowledge buttons."""

import reflex as rx

from app.monitoring.alerts_state import AlertRow, AlertsState


def _alert_row(row: AlertRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.text(row.model, " ", row.version, weight="bold", class_name="alert-model")),
        rx.table.cell(rx.badge(row.kind, color_scheme="red", class_name="alert-kind")),
        rx.table.cell(
            rx.vstack(
                rx.text(row.message, size="2", class_name="alert-message"),
                rx.text(
                    row.statistic, " ", row.value, " (threshold ", row.threshold, ")", size="1", color_scheme="gray"
                ),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.vstack(
                rx.text(row.opened, size="1"),
                rx.text("last seen ", row.last_seen, size="1", color_scheme="gray"),
                spacing="1",
            )
        ),
        rx.table.cell(
            rx.button(
                "Acknowledge",
                size="1",
                variant="soft",
                on_click=AlertsState.acknowledge(row.id),
                class_name="alert-acknowledge",
            )
        ),
        id=f"alert-{row.id}",
        class_name="alert-row",
    )


def alerts_panel() -> rx.Component:
    """Loads itself when shown, so that a page adds it with one line."""
    return rx.card(
        rx.vstack(
            rx.heading("Open alerts", size="4"),
            rx.cond(
                AlertsState.open_alerts,
                rx.table.root(
                    rx.table.header(
                        rx.table.row(
                            *[rx.table.column_header_cell(h) for h in ("Model", "Kind", "What", "Opened (UTC)", "")]
                        )
                    ),
                    rx.table.body(rx.foreach(AlertsState.open_alerts, _alert_row)),
                    width="100%",
                ),
                rx.text("No open alert.", color_scheme="gray", size="2", id="alerts-none"),
            ),
            spacing="3",
            width="100%",
        ),
        on_mount=AlertsState.load,
        id="alerts-panel",
        width="100%",
    )
