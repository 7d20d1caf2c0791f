"""The Usage page (admins): requests, errors, latency and tokens per user, API key or model
over a period, filtered, as a table and a chart; the CSV export is the API's, with the same
query."""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.errors import InvalidInput
from app.core.roles import Role
from app.usage import service
from app.usage.schemas import GROUP_BYS, UsageReport
from app.usage.service import UsageFilter

ALL = "all"
NO_KEY = "none"
PERIOD_CHOICES = ["hour", "day", "week", "custom"]
# How a bucket's start reads on the chart's time axis (UTC), by bucket width in seconds.
TIME_FORMATS = {60: "%H:%M", 3600: "%m-%d %H:00"}
# The chart stacks the busiest groups; the rest add up to "others".
CHART_GROUPS = 8
OTHERS = "others"
GROUP_COLORS = ["iris", "teal", "amber", "crimson", "grass", "violet", "orange", "cyan"]


@dataclass
class GroupRow:
    label: str
    requests: int
    errors: int
    error_rate: str
    mean_latency: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class ChartSeries:
    key: str
    label: str
    color: str


@dataclass
class FilterOption:
    value: str
    label: str


def _parse_moment(text: str, name: str) -> datetime:
    """A datetime-local input's value (the browser's wall clock, taken as UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{name}: {text!r} is not a date and time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _chart_rows(report: UsageReport, width: int) -> tuple[list[dict[str, Any]], list[ChartSeries]]:
    """One row per time bucket: {"time", "errors", "g0".."g7", "others"}: requests per group,
    the busiest groups by name, the rest together."""
    shown = {group.group: f"g{index}" for index, group in enumerate(report.groups[:CHART_GROUPS])}
    series = [
        ChartSeries(key=key, label=group.label, color=f"var(--{GROUP_COLORS[index]}-9)")
        for index, (group, key) in enumerate(zip(report.groups, shown.values(), strict=False))
    ]
    if len(report.groups) > CHART_GROUPS:
        series.append(ChartSeries(key=OTHERS, label="others", color="var(--gray-8)"))
    time_format = TIME_FORMATS.get(width, "%Y-%m-%d")
    rows: dict[datetime, dict[str, Any]] = {}
    for point in report.series:
        row = rows.setdefault(
            point.start, {"time": f"{point.start:{time_format}}", "errors": 0, **{s.key: 0 for s in series}}
        )
        row[shown.get(point.group, OTHERS)] += point.requests
        row["errors"] += point.errors
    return list(rows.values()), series


class UsageState(AuthState):
    group_by: str = "user"
    period: str = "day"
    since: str = ""
    until: str = ""
    user_filter: str = ALL
    key_filter: str = ALL
    model_filter: str = ALL
    user_options: list[FilterOption] = []
    key_options: list[FilterOption] = []
    model_options: list[FilterOption] = []
    # Totals of the period.
    requests: int = 0
    errors: int = 0
    mean_latency: str = "—"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rows: list[GroupRow] = []
    chart: list[dict[str, Any]] = []
    chart_series: list[ChartSeries] = []
    # The API query of what is shown, for the CSV export link.
    query: str = ""

    @rx.var
    def csv_url(self) -> str:
        return f"/api/v1/usage.csv?{self.query}" if self.query else ""

    def _period_arguments(self) -> dict[str, Any] | None:
        if self.period != "custom":
            return {"period": self.period}
        if not (self.since and self.until):
            return None
        return {"since": _parse_moment(self.since, "From"), "until": _parse_moment(self.until, "Until")}

    def _narrowed(self) -> UsageFilter:
        key = self.key_filter
        return UsageFilter(
            user_id=None if self.user_filter == ALL else int(self.user_filter),
            api_key_id=int(key) if key not in (ALL, NO_KEY) else None,
            without_key=key == NO_KEY,
            model=None if self.model_filter == ALL else self.model_filter,
        )

    def _query(self, period: dict[str, Any]) -> str:
        arguments = {"group_by": self.group_by}
        for name, value in period.items():
            arguments[name] = value.isoformat() if isinstance(value, datetime) else value
        for name, value in (("user", self.user_filter), ("key", self.key_filter), ("model", self.model_filter)):
            if value != ALL:
                arguments[name] = value
        return urlencode(arguments)

    async def _report(self, period: dict[str, Any]) -> UsageReport:
        return await run_in_session(
            service.usage_report, actor=acting_user(), group_by=self.group_by, narrowed=self._narrowed(), **period
        )

    async def _refresh(self) -> None:
        period = self._period_arguments()
        if period is None:
            return
        report = await self._report(period)
        # Usage is written while this runs: the choices, read after the report, offer everyone
        # and everything that it shows.
        choices = await run_in_session(service.filter_choices, actor=acting_user(), **period)
        self.user_options = [FilterOption(ALL, "All users")] + [FilterOption(c.id, c.label) for c in choices.users]
        self.key_options = [FilterOption(ALL, "All keys"), FilterOption(NO_KEY, service.NO_KEY_LABEL)] + [
            FilterOption(c.id, c.label) for c in choices.keys
        ]
        self.model_options = [FilterOption(ALL, "All models")] + [FilterOption(m, m) for m in choices.models]
        # A filter on someone or something without usage in the new period shows everything again.
        stale_filters = [
            name
            for name, options in (
                ("user_filter", self.user_options),
                ("key_filter", self.key_options),
                ("model_filter", self.model_options),
            )
            if getattr(self, name) not in {option.value for option in options}
        ]
        if stale_filters:
            for name in stale_filters:
                setattr(self, name, ALL)
            report = await self._report(period)
        totals = report.totals
        self.requests, self.errors = totals.requests, totals.errors
        self.prompt_tokens, self.completion_tokens = totals.prompt_tokens, totals.completion_tokens
        self.mean_latency = "—" if totals.mean_latency_ms is None else f"{totals.mean_latency_ms:.1f} ms"
        self.rows = [
            GroupRow(
                label=group.label,
                requests=group.requests,
                errors=group.errors,
                error_rate=f"{group.errors / group.requests:.1%}" if group.requests else "—",
                mean_latency="—" if group.mean_latency_ms is None else f"{group.mean_latency_ms:.1f} ms",
                prompt_tokens=group.prompt_tokens,
                completion_tokens=group.completion_tokens,
            )
            for group in report.groups
        ]
        self.chart, self.chart_series = _chart_rows(report, report.bucket_seconds)
        self.query = self._query(period)

    @rx.event
    @guarded(Role.admin)
    async def load(self):
        await self._refresh()

    @rx.event
    @guarded(Role.admin)
    async def refresh(self):
        await self._refresh()

    @rx.event
    @guarded(Role.admin)
    async def choose_group_by(self, group_by: str):
        if group_by not in GROUP_BYS:
            raise InvalidInput(f"Group by one of {', '.join(GROUP_BYS)}; got {group_by!r}.")
        self.group_by = group_by
        await self._refresh()

    @rx.event
    @guarded(Role.admin)
    async def choose_period(self, period: str):
        if period not in PERIOD_CHOICES:
            raise InvalidInput(f"Unknown period {period!r}; choose one of {', '.join(PERIOD_CHOICES)}.")
        self.period = period
        await self._refresh()

    @rx.event
    @guarded(Role.admin)
    async def choose_custom_period(self, form: dict):
        """From and until (datetime-local inputs, UTC) of a custom period."""
        self.since, self.until = str(form.get("since", "")), str(form.get("until", ""))
        self.period = "custom"
        await self._refresh()

    @rx.event
    @guarded(Role.admin)
    async def choose_user(self, value: str):
        self.user_filter = self._offered(value, self.user_options, "user")
        await self._refresh()

    @rx.event
    @guarded(Role.admin)
    async def choose_key(self, value: str):
        self.key_filter = self._offered(value, self.key_options, "API key")
        await self._refresh()

    @rx.event
    @guarded(Role.admin)
    async def choose_model(self, value: str):
        self.model_filter = self._offered(value, self.model_options, "model")
        await self._refresh()

    @staticmethod
    def _offered(value: str, options: list[FilterOption], what: str) -> str:
        if value not in {option.value for option in options}:
            raise InvalidInput(f"No {what} {value!r} had usage in this period.")
        return value
