"""The Monitoring page (staff): a model's traffic, latency, cache, label mix, confidence,
errors and accuracy against feedback over a period, as charts. Ids are stable for the
browser tests: monitoring-model, monitoring-version, monitoring-period, monitoring-chart-*."""

import reflex as rx

from app.monitoring.alerts_page import alerts_panel
from app.monitoring.drift_page import drift_panel
from app.monitoring.drift_state import DriftState
from app.monitoring.state import PERIOD_CHOICES, LabelSeries, MonitoringState
from app.ui.layout import shell

CHART_HEIGHT = 220


def _stat(label: str, value: rx.Var, element_id: str) -> rx.Component:
    return rx.card(
        rx.text(label, size="1", color_scheme="gray"),
        rx.text(value, size="5", weight="bold", id=element_id),
        min_width="130px",
    )


def _chart_card(title: str, chart: rx.Component, element_id: str) -> rx.Component:
    return rx.card(rx.text(title, size="2", weight="bold"), chart, id=element_id, width="100%")


def _time_chart(kind, *series: rx.Component, data=MonitoringState.series, unit: str = "") -> rx.Component:
    return kind(
        *series,
        rx.recharts.x_axis(data_key="time", min_tick_gap=24),
        rx.recharts.y_axis(unit=unit, width=60),
        rx.recharts.graphing_tooltip(),
        rx.recharts.legend(),
        data=data,
        width="100%",
        height=CHART_HEIGHT,
    )


def _line(key: str, name: str, color: str, unit: str = "") -> rx.Component:
    return rx.recharts.line(
        data_key=key,
        name=name,
        stroke=f"var(--{color}-9)",
        dot=False,
        unit=unit,
        connect_nulls=True,
        is_animation_active=False,
    )


def _label_area(series: LabelSeries) -> rx.Component:
    return rx.recharts.area(
        data_key=series.label,
        name=series.label,
        stack_id="labels",
        stroke=series.color,
        fill=series.color,
        is_animation_active=False,
    )


def _controls() -> rx.Component:
    return rx.hstack(
        rx.select(
            MonitoringState.models,
            value=MonitoringState.model_name,
            # The drift panel follows the chosen model.
            on_change=lambda name: [MonitoringState.choose_model(name), DriftState.load_drift()],
            placeholder="Choose a model",
            id="monitoring-model",
        ),
        rx.select(
            MonitoringState.versions,
            value=MonitoringState.version,
            on_change=MonitoringState.choose_version,
            id="monitoring-version",
        ),
        rx.select(
            PERIOD_CHOICES,
            value=MonitoringState.period,
            on_change=MonitoringState.choose_period,
            id="monitoring-period",
        ),
        rx.cond(
            MonitoringState.period == "custom",
            rx.form(
                rx.hstack(
                    rx.input(type="datetime-local", name="since", id="monitoring-since"),
                    rx.input(type="datetime-local", name="until", id="monitoring-until"),
                    rx.button("Show (UTC)", type="submit", size="2", id="monitoring-custom-submit"),
                    align="center",
                ),
                on_submit=MonitoringState.choose_custom_period,
                reset_on_submit=False,
            ),
        ),
        rx.button("Refresh", variant="soft", on_click=MonitoringState.refresh, id="monitoring-refresh"),
        align="center",
        wrap="wrap",
        spacing="3",
    )


def _totals() -> rx.Component:
    return rx.hstack(
        _stat("Predictions logged", MonitoringState.predictions, "monitoring-total-predictions"),
        _stat("Errors", MonitoringState.errors, "monitoring-total-errors"),
        _stat("Cache hit rate", MonitoringState.cache_hit_rate, "monitoring-total-cache"),
        _stat("Latency p50", MonitoringState.latency_p50, "monitoring-total-p50"),
        _stat("Latency p95", MonitoringState.latency_p95, "monitoring-total-p95"),
        _stat("Accuracy (feedback)", MonitoringState.accuracy, "monitoring-total-accuracy"),
        _stat("Predictions with feedback", MonitoringState.feedback, "monitoring-total-feedback"),
        wrap="wrap",
        spacing="3",
    )


def monitoring_page() -> rx.Component:
    return shell(
        "Monitoring",
        _controls(),
        rx.text(
            "Figures of the prediction log: a sample of ",
            MonitoringState.sample_rate,
            " of predictions (STRATA_PREDICTION_LOG_SAMPLE_RATE), and every Predict page prediction. Times in UTC.",
            size="2",
            color_scheme="gray",
        ),
        _totals(),
        alerts_panel(),
        drift_panel(),
        rx.grid(
            _chart_card(
                "Predictions over time",
                _time_chart(
                    rx.recharts.bar_chart,
                    rx.recharts.bar(
                        data_key="predictions", name="predictions", fill="var(--iris-9)", is_animation_active=False
                    ),
                ),
                "monitoring-chart-predictions",
            ),
            _chart_card(
                "Latency (ms)",
                _time_chart(
                    rx.recharts.line_chart, _line("p50", "p50", "teal", " ms"), _line("p95", "p95", "amber", " ms")
                ),
                "monitoring-chart-latency",
            ),
            _chart_card(
                "Cache hit rate",
                _time_chart(rx.recharts.line_chart, _line("cache_hit_rate", "cache hits", "grass", "%"), unit="%"),
                "monitoring-chart-cache",
            ),
            _chart_card(
                "Label mix",
                _time_chart(rx.recharts.area_chart, rx.foreach(MonitoringState.labels, _label_area)),
                "monitoring-chart-labels",
            ),
            _chart_card(
                "Confidence distribution",
                rx.recharts.bar_chart(
                    rx.recharts.bar(
                        data_key="count", name="predictions", fill="var(--violet-9)", is_animation_active=False
                    ),
                    rx.recharts.x_axis(data_key="bin"),
                    rx.recharts.y_axis(width=60),
                    rx.recharts.graphing_tooltip(),
                    data=MonitoringState.confidence,
                    width="100%",
                    height=CHART_HEIGHT,
                ),
                "monitoring-chart-confidence",
            ),
            _chart_card(
                "Errors",
                _time_chart(
                    rx.recharts.bar_chart,
                    rx.recharts.bar(data_key="errors", name="errors", fill="var(--red-9)", is_animation_active=False),
                ),
                "monitoring-chart-errors",
            ),
            _chart_card(
                "Accuracy against feedback",
                _time_chart(
                    rx.recharts.composed_chart,
                    rx.recharts.bar(
                        data_key="feedback",
                        name="with feedback",
                        fill="var(--gray-7)",
                        y_axis_id="n",
                        is_animation_active=False,
                    ),
                    _line("accuracy", "accuracy", "crimson", "%"),
                    rx.recharts.y_axis(y_axis_id="n", orientation="right", width=40),
                    unit="%",
                ),
                "monitoring-chart-accuracy",
            ),
            columns=rx.breakpoints(initial="1", lg="2"),
            spacing="4",
            width="100%",
        ),
    )
