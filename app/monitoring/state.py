"""The Monitoring page: a model's (or one version's) figures over a period, as chart rows.
Staff only, like the figures themselves."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.errors import InvalidInput
from app.core.roles import Role
from app.monitoring import service
from app.monitoring.schemas import MonitoringFigures
from app.predict import registry

ALL_VERSIONS = "all"
PERIOD_CHOICES = ["hour", "day", "week", "custom"]
# How a bucket's start reads on the charts' time axis (UTC), by bucket width in seconds.
TIME_FORMATS = {60: "%H:%M", 3600: "%m-%d %H:00"}
LABEL_COLORS = ["iris", "teal", "amber", "crimson", "grass", "violet", "orange", "cyan", "pink", "brown"]


@dataclass
class LabelSeries:
    label: str
    color: str


def _number(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 1) -> str:
    return "—" if value is None else f"{value * scale:.{digits}f}{unit}"


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _parse_moment(text: str, name: str) -> datetime:
    """A datetime-local input's value (the browser's wall clock, taken as UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: {text!r} is not a date and time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class MonitoringState(AuthState):
    models: list[str] = []
    model_name: str = ""
    versions: list[str] = [ALL_VERSIONS]
    version: str = ALL_VERSIONS
    period: str = "day"
    since: str = ""
    until: str = ""
    # Totals of the period, as shown.
    predictions: int = 0
    errors: int = 0
    cache_hit_rate: str = "—"
    latency_p50: str = "—"
    latency_p95: str = "—"
    accuracy: str = "—"
    feedback: int = 0
    sample_rate: str = ""
    # Chart rows, one per time bucket: {"time", "predictions", "errors", "cache_hit_rate",
    # "p50", "p95", "accuracy", "feedback", <label>: count ...}.
    series: list[dict[str, Any]] = []
    labels: list[LabelSeries] = []
    confidence: list[dict[str, Any]] = []

    def _apply(self, figures: MonitoringFigures) -> None:
        totals = figures.totals
        self.predictions, self.errors, self.feedback = totals.predictions, totals.errors, totals.feedback
        self.cache_hit_rate = _number(totals.cache_hit_rate, "%", 100)
        self.latency_p50 = _number(totals.latency_p50_ms, " ms")
        self.latency_p95 = _number(totals.latency_p95_ms, " ms")
        self.accuracy = _number(totals.accuracy, "%", 100)
        self.sample_rate = f"{figures.sample_rate:.0%}"
        time_format = TIME_FORMATS.get(figures.bucket_seconds, "%Y-%m-%d")
        self.labels = [
            LabelSeries(label=label, color=f"var(--{LABEL_COLORS[index % len(LABEL_COLORS)]}-9)")
            for index, label in enumerate(totals.labels)
        ]
        self.series = [
            {
                "time": f"{bucket.start:{time_format}}",
                "predictions": bucket.predictions,
                "errors": bucket.errors,
                "cache_hit_rate": _percent(bucket.cache_hit_rate),
                "p50": bucket.latency_p50_ms,
                "p95": bucket.latency_p95_ms,
                "accuracy": _percent(bucket.accuracy),
                "feedback": bucket.feedback,
                **{label: bucket.labels.get(label, 0) for label in totals.labels},
            }
            for bucket in figures.buckets
        ]
        self.confidence = [
            {"bin": f"{item.low:.1f}–{item.high:.1f}", "count": item.count} for item in figures.confidence
        ]

    async def _refresh(self) -> None:
        if not self.model_name:
            return
        custom = self.period == "custom"
        if custom and not (self.since and self.until):
            return
        figures = await run_in_session(
            service.figures,
            actor=acting_user(),
            model_name=self.model_name,
            version_number=None if self.version == ALL_VERSIONS else int(self.version),
            period=None if custom else self.period,
            since=_parse_moment(self.since, "From") if custom else None,
            until=_parse_moment(self.until, "Until") if custom else None,
        )
        self._apply(figures)

    async def _choose_model(self, name: str) -> None:
        versions = await run_in_session(registry.list_versions, actor=acting_user(), model_name=name)
        self.model_name = name
        self.versions = [ALL_VERSIONS] + [str(version.number) for version in versions]
        self.version = ALL_VERSIONS

    @rx.event
    @guarded(Role.staff)
    async def load(self):
        models = await run_in_session(registry.list_models, actor=acting_user())
        self.models = [model.name for model in models]
        if self.models:
            await self._choose_model(self.model_name if self.model_name in self.models else self.models[0])
        await self._refresh()

    @rx.event
    @guarded(Role.staff)
    async def choose_model(self, name: str):
        if name not in self.models:
            raise InvalidInput(f"No model named {name!r}.")
        await self._choose_model(name)
        await self._refresh()

    @rx.event
    @guarded(Role.staff)
    async def choose_version(self, version: str):
        if version not in self.versions:
            raise InvalidInput(f"{self.model_name!r} has no version {version}.")
        self.version = version
        await self._refresh()

    @rx.event
    @guarded(Role.staff)
    async def choose_period(self, period: str):
        if period not in PERIOD_CHOICES:
            raise InvalidInput(f"Unknown period {period!r}; choose one of {', '.join(PERIOD_CHOICES)}.")
        self.period = period
        await self._refresh()

    @rx.event
    @guarded(Role.staff)
    async def choose_custom_period(self, form: dict):
        """From and until (datetime-local inputs, UTC) of a custom period."""
        self.since, self.until = str(form.get("since", "")), str(form.get("until", ""))
        self.period = "custom"
        await self._refresh()

    @rx.event
    @guarded(Role.staff)
    async def refresh(self):
        await self._refresh()
