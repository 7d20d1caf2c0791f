"""Usage analytics: requests, errors, latency and tokens per user, API key or model over a
period, from the usage log (app/usage/recording.py writes it). Admins only.

The database aggregates: one scan of the period (over the index that leads with the filtered
column and `at`) grouped by time bucket and group; Python receives one row per (bucket,
group) and sums those for the groups' and the period's totals. Latency is the mean (sums
of milliseconds add up across buckets and groups exactly, where percentiles would not).

Retention: rows older than STRATA_USAGE_RETENTION_DAYS are deleted by a daily worker job
(app/usage/jobs.py); no rollups are kept, so figures reach back that far and no further."""

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from app.auth.tables import ApiKey, User
from app.core.errors import NotFound
from app.core.roles import Role, require_role
from app.core.time import utcnow
from app.core.time_buckets import Period, bucket_number, bucket_seconds, bucket_start, checked_period
from app.usage.schemas import Choice, GroupBucket, GroupBy, GroupTotals, UsageChoices, UsageFigures, UsageReport
from app.usage.tables import UsageEvent

NO_KEY_LABEL = "No API key (pages and session cookies)"
# Cells a spreadsheet would read as a formula start with one of these; they are exported as text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

event = UsageEvent.__table__.c


@dataclass(frozen=True)
class UsageFilter:
    """Which requests count: all of them, or one user's, one key's (or those with no key),
    one model's. Filters combine."""

    user_id: int | None = None
    api_key_id: int | None = None
    without_key: bool = False
    model: str | None = None


def _conditions(db_session: Session, narrowed: UsageFilter) -> list[ColumnElement]:
    conditions = []
    if narrowed.user_id is not None:
        if db_session.get(User, narrowed.user_id) is None:
            raise NotFound(f"No user with id {narrowed.user_id}.")
        conditions.append(event.user_id == narrowed.user_id)
    if narrowed.api_key_id is not None:
        if db_session.get(ApiKey, narrowed.api_key_id) is None:
            raise NotFound(f"No API key with id {narrowed.api_key_id}.")
        conditions.append(event.api_key_id == narrowed.api_key_id)
    elif narrowed.without_key:
        conditions.append(event.api_key_id.is_(None))
    if narrowed.model is not None:
        conditions.append(event.model == narrowed.model)
    return conditions


class _Sums:
    """Requests, errors, latency and tokens added up over rows of the grouped scan."""

    def __init__(self) -> None:
        self.requests = self.errors = self.prompt_tokens = self.completion_tokens = 0
        self.latency_ms = 0.0

    def add(self, requests: int, errors: int, latency_ms: float, prompt: int, completion: int) -> None:
        self.requests += requests
        self.errors += errors
        self.latency_ms += latency_ms
        self.prompt_tokens += prompt
        self.completion_tokens += completion

    def figures(self) -> dict:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "mean_latency_ms": round(self.latency_ms / self.requests, 3) if self.requests else None,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


def _group_column(group_by: GroupBy) -> ColumnElement:
    return {"user": event.user_id, "key": event.api_key_id, "model": event.model}[group_by]


def _labels(db_session: Session, group_by: GroupBy, groups: dict, emails: dict) -> dict:
    """What a person reads for each group: emails as recorded, keys' names and prefixes."""
    if group_by == "user":
        return {group: emails[group] for group in groups}
    if group_by == "model":
        return {group: group for group in groups}
    ids = [group for group in groups if group is not None]
    keys = {
        key_id: f"{name} ({prefix}…)"
        for key_id, name, prefix in db_session.execute(
            select(ApiKey.id, ApiKey.name, ApiKey.prefix).where(ApiKey.id.in_(ids))
        ).all()
    }
    return {group: NO_KEY_LABEL if group is None else keys.get(group, f"deleted key {group}") for group in groups}


def usage_report(
    *,
    db_session: Session,
    actor: User,
    group_by: GroupBy = "user",
    period: Period | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    narrowed: UsageFilter = UsageFilter(),
) -> UsageReport:
    """Usage over `period` ending now (default: a day) or from `since` to `until` (default
    now), per `group_by`, narrowed by the filter. Admins only. Raises InvalidInput (a bad
    period), NotFound (a user or key that does not exist)."""
    require_role(actor, Role.admin)
    since, until = checked_period(period, since, until)
    width = bucket_seconds(until - since)
    bucket = bucket_number(db_session.get_bind().dialect.name, width, event.at).label("bucket")
    group = _group_column(group_by).label("grouped")
    failed = func.sum(case((event.status_code >= 400, 1), else_=0))
    rows = db_session.execute(
        select(
            bucket,
            group,
            func.count(),
            failed,
            func.sum(event.latency_ms),
            func.sum(func.coalesce(event.prompt_tokens, 0)),
            func.sum(func.coalesce(event.completion_tokens, 0)),
            # The user's email as recorded (one of them, should they have changed it).
            func.max(event.user_email),
        )
        .where(and_(event.at >= since, event.at < until, *_conditions(db_session, narrowed)))
        .group_by(bucket, group)
        .order_by(bucket)
    ).all()

    overall, per_group, emails = _Sums(), defaultdict(_Sums), {}
    series = []
    for number, grouped, requests, errors, latency, prompt, completion, email in rows:
        counts = (int(requests), int(errors or 0), float(latency or 0.0), int(prompt or 0), int(completion or 0))
        overall.add(*counts)
        per_group[grouped].add(*counts)
        emails[grouped] = email
        single = _Sums()
        single.add(*counts)
        series.append(
            GroupBucket(
                start=bucket_start(int(number), width),
                group=None if grouped is None else str(grouped),
                **single.figures(),
            )
        )
    labels = _labels(db_session, group_by, per_group, emails)
    groups = [
        GroupTotals(group=None if key is None else str(key), label=labels[key], **sums.figures())
        for key, sums in sorted(per_group.items(), key=lambda item: (-item[1].requests, labels[item[0]]))
    ]
    return UsageReport(
        since=since,
        until=until,
        bucket_seconds=width,
        group_by=group_by,
        totals=UsageFigures(**overall.figures()),
        groups=groups,
        series=series,
    )


def filter_choices(
    *,
    db_session: Session,
    actor: User,
    period: Period | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> UsageChoices:
    """The users, API keys and models that have usage in the period, for the page's filters."""
    require_role(actor, Role.admin)
    since, until = checked_period(period, since, until)
    in_period = and_(event.at >= since, event.at < until)
    users = db_session.execute(
        select(event.user_id, func.max(event.user_email)).where(in_period).group_by(event.user_id)
    ).all()
    key_ids = db_session.execute(select(event.api_key_id).where(in_period).distinct()).scalars().all()
    models = db_session.execute(select(event.model).where(in_period).distinct()).scalars().all()
    key_labels = _labels(db_session, "key", dict.fromkeys(key_ids), {})
    return UsageChoices(
        users=sorted((Choice(id=str(user_id), label=email) for user_id, email in users), key=lambda c: c.label),
        keys=sorted(
            (Choice(id=str(key_id), label=key_labels[key_id]) for key_id in key_ids if key_id is not None),
            key=lambda c: c.label,
        ),
        models=sorted(models),
    )


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


CSV_COLUMNS = (
    "period_start",
    "group_by",
    "group",
    "label",
    "requests",
    "errors",
    "mean_latency_ms",
    "prompt_tokens",
    "completion_tokens",
)


def report_csv(report: UsageReport) -> str:
    """The report's time series as CSV: one row per time bucket (UTC, ISO 8601) and group."""
    labels = {group.group: group.label for group in report.groups}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in report.series:
        writer.writerow(
            _cell(value)
            for value in (
                row.start.isoformat(),
                report.group_by,
                row.group,
                labels[row.group],
                row.requests,
                row.errors,
                row.mean_latency_ms,
                row.prompt_tokens,
                row.completion_tokens,
            )
        )
    return out.getvalue()


def delete_old_usage(*, db_session: Session, retention_days: int) -> int:
    """Deletes usage events older than `retention_days` (the daily worker job); returns how many."""
    cutoff = utcnow() - timedelta(days=retention_days)
    return db_session.execute(delete(UsageEvent).where(event.at < cutoff)).rowcount
