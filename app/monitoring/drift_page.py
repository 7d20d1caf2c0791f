"""The Monitoring page's drift panel (DriftState): latest scores against thresholds, crossed ones
in red, the reference window picker, thresholds, "Compute drift now" and recent results. Ids are
stable for the browser tests: drift-panel, drift-model, drift-status, drift-score-<statistic>, drift-compute."""

import reflex as rx

from app.monitoring.drift_state import DriftState, HistoryRow, ScoreRow


def _score_row(row: ScoreRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(rx.code(row.statistic)),
        rx.table.cell(row.score, id="drift-score-" + row.statistic),
        rx.table.cell(row.threshold),
        rx.table.cell(
            rx.cond(row.crossed, rx.badge("crossed", color_scheme="red"), rx.badge("ok", color_scheme="green"))
        ),
        background_color=rx.cond(row.crossed, "var(--red-3)", "transparent"),
    )


def _history_row(row: HistoryRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(row.computed_at),
        rx.table.cell(row.version),
        rx.table.cell(row.status),
        rx.table.cell(row.crossed),
        rx.table.cell(row.triggered_by),
    )


def _table(headers: list[str], body: rx.Component) -> rx.Component:
    return rx.table.root(
        rx.table.header(rx.table.row(*[rx.table.column_header_cell(header) for header in headers])),
        rx.table.body(body),
        size="1",
        width="100%",
    )


def _reference_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.text("Reference window (UTC, for versions without training data):", size="2"),
            rx.input(type="datetime-local", name="since", id="drift-reference-since"),
            rx.input(type="datetime-local", name="until", id="drift-reference-until"),
            rx.button("Set reference", type="submit", size="2", variant="soft", id="drift-reference-submit"),
            align="center",
            wrap="wrap",
        ),
        on_submit=DriftState.save_reference_window,
        reset_on_submit=False,
    )


def _threshold_form() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.text("Threshold:", size="2"),
            rx.select(
                DriftState.threshold_statistics, name="statistic", default_value="label_psi", id="drift-statistic"
            ),
            rx.input(name="value", placeholder="empty: default", width="120px", id="drift-threshold-value"),
            rx.button("Save threshold", type="submit", size="2", variant="soft", id="drift-threshold-submit"),
            align="center",
            wrap="wrap",
        ),
        on_submit=DriftState.save_threshold,
        reset_on_submit=True,
    )


def drift_panel() -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.heading("Drift · ", DriftState.drift_model, size="4", id="drift-model"),
                rx.badge(DriftState.drift_status, id="drift-status"),
                rx.spacer(),
                rx.button("Compute drift now", on_click=DriftState.compute_now, id="drift-compute"),
                align="center",
                width="100%",
            ),
            rx.text(DriftState.drift_message, size="2"),
            rx.text("Current window: ", DriftState.drift_window, size="1", color_scheme="gray"),
            rx.text("Reference: ", DriftState.drift_reference, size="1", color_scheme="gray"),
            rx.text("Reference window set: ", DriftState.reference_window, size="1", color_scheme="gray"),
            _table(["statistic", "score", "threshold", ""], rx.foreach(DriftState.scores, _score_row)),
            _reference_form(),
            _threshold_form(),
            rx.text("Recent results", size="2", weight="bold"),
            _table(
                ["computed (UTC)", "version", "status", "crossed", "by"],
                rx.foreach(DriftState.history, _history_row),
            ),
            spacing="2",
            width="100%",
        ),
        id="drift-panel",
        width="100%",
        on_mount=DriftState.load_drift,
    )
