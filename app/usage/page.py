"""The Usage page (admins): requests, errors, latency and tokens per user, API key or model over
a period, filtered, as a table and a chart over time, with a CSV export. Ids are stable for the
browser tests: usage-group-by, usage-period, usage-user, usage-key, usage-model, usage-export,
usage-table, usage-chart."""

import reflex as rx

from app.ui.layout import shell
from app.usage.schemas import GROUP_BYS
from app.usage.state import PERIOD_CHOICES, ChartSeries, FilterOption, GroupRow, UsageState

CHART_HEIGHT = 260
GROUP_TITLES = {"user": "User", "key": "API key", "model": "Model"}


def _stat(label: str, value: rx.Var, element_id: str) -> rx.Component:
    return rx.card(
        rx.text(label, size="1", color_scheme="gray"),
        rx.text(value, size="5", weight="bold", id=element_id),
        min_width="130px",
    )


def _labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="1", color_scheme="gray"), control, spacing="1")


def _option_select(options: rx.Var[list[FilterOption]], value: rx.Var[str], on_change, element_id: str):
    return rx.select.root(
        rx.select.trigger(min_width="160px", id=element_id),
        rx.select.content(rx.foreach(options, lambda option: rx.select.item(option.label, value=option.value))),
        value=value,
        on_change=on_change,
    )


def _controls() -> rx.Component:
    return rx.hstack(
        _labelled(
            "Group by",
            rx.select(
                list(GROUP_BYS), value=UsageState.group_by, on_change=UsageState.choose_group_by, id="usage-group-by"
            ),
        ),
        _labelled(
            "Period",
            rx.select(PERIOD_CHOICES, value=UsageState.period, on_change=UsageState.choose_period, id="usage-period"),
        ),
        rx.cond(
            UsageState.period == "custom",
            rx.form(
                rx.hstack(
                    rx.input(type="datetime-local", name="since", id="usage-since"),
                    rx.input(type="datetime-local", name="until", id="usage-until"),
                    rx.button("Show (UTC)", type="submit", size="2", id="usage-custom-submit"),
                    align="end",
                ),
                on_submit=UsageState.choose_custom_period,
                reset_on_submit=False,
            ),
        ),
        _labelled(
            "User",
            _option_select(UsageState.user_options, UsageState.user_filter, UsageState.choose_user, "usage-user"),
        ),
        _labelled(
            "API key", _option_select(UsageState.key_options, UsageState.key_filter, UsageState.choose_key, "usage-key")
        ),
        _labelled(
            "Model",
            _option_select(UsageState.model_options, UsageState.model_filter, UsageState.choose_model, "usage-model"),
        ),
        rx.button("Refresh", variant="soft", on_click=UsageState.refresh, id="usage-refresh"),
        rx.el.a(
            rx.button("Export CSV", variant="soft", id="usage-export-button"),
            href=UsageState.csv_url,
            download="",
            # A file from the API, not a page: React Router would otherwise route it in the app (a 404 page).
            reload_document=True,
            id="usage-export",
        ),
        align="end",
        wrap="wrap",
        spacing="3",
    )


def _totals() -> rx.Component:
    return rx.hstack(
        _stat("Requests", UsageState.requests, "usage-total-requests"),
        _stat("Errors", UsageState.errors, "usage-total-errors"),
        _stat("Mean latency", UsageState.mean_latency, "usage-total-latency"),
        _stat("Prompt tokens", UsageState.prompt_tokens, "usage-total-prompt-tokens"),
        _stat("Completion tokens", UsageState.completion_tokens, "usage-total-completion-tokens"),
        wrap="wrap",
        spacing="3",
    )


def _row(row: GroupRow) -> rx.Component:
    return rx.table.row(
        rx.table.row_header_cell(row.label),
        rx.table.cell(row.requests),
        rx.table.cell(row.errors),
        rx.table.cell(row.error_rate),
        rx.table.cell(row.mean_latency),
        rx.table.cell(row.prompt_tokens),
        rx.table.cell(row.completion_tokens),
        class_name="usage-row",
    )


def _table() -> rx.Component:
    group_title = rx.match(UsageState.group_by, *GROUP_TITLES.items(), "Group")
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                rx.table.column_header_cell(group_title),
                *[
                    rx.table.column_header_cell(title)
                    for title in (
                        "Requests",
                        "Errors",
                        "Error rate",
                        "Mean latency",
                        "Prompt tokens",
                        "Completion tokens",
                    )
                ],
            )
        ),
        rx.table.body(rx.foreach(UsageState.rows, _row)),
        id="usage-table",
        width="100%",
    )


def _group_bar(series: ChartSeries) -> rx.Component:
    return rx.recharts.bar(
        data_key=series.key, name=series.label, stack_id="requests", fill=series.color, is_animation_active=False
    )


def _chart() -> rx.Component:
    return rx.card(
        rx.text("Requests over time (errors as a line)", size="2", weight="bold"),
        rx.recharts.composed_chart(
            rx.foreach(UsageState.chart_series, _group_bar),
            rx.recharts.line(
                data_key="errors", name="errors", stroke="var(--red-9)", dot=False, is_animation_active=False
            ),
            rx.recharts.x_axis(data_key="time", min_tick_gap=24),
            rx.recharts.y_axis(width=60),
            rx.recharts.graphing_tooltip(),
            rx.recharts.legend(),
            data=UsageState.chart,
            width="100%",
            height=CHART_HEIGHT,
        ),
        id="usage-chart",
        width="100%",
    )


def usage_page() -> rx.Component:
    return shell(
        "Usage",
        _controls(),
        rx.text(
            "Predictions, asks, chat completions and embeddings from the pages and the API alike. "
            "Tokens are the generator's own counts. Times in UTC.",
            size="2",
            color_scheme="gray",
        ),
        _totals(),
        _chart(),
        _table(),
    )
