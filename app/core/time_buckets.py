"""Periods and time buckets for figures aggregated by the database (monitoring, usage): a
period checked once, a bucket width that keeps charts readable, and the SQL expression
numbering the bucket a row falls in, the same on SQLite and PostgreSQL."""

import math
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import BigInteger, Integer, cast, extract, func, literal_column
from sqlalchemy.sql.elements import ColumnElement

from app.core.errors import InvalidInput
from app.core.time import utcnow

Period = Literal["hour", "day", "week"]
PERIODS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}
MAX_PERIOD = timedelta(days=400)


def checked_period(period: Period | None, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    """(since, until) in UTC: `period` (default a day) ending at `until` (default now), or
    from `since`. Raises InvalidInput for both at once, an empty or a too long period."""
    until = until or utcnow()
    if since is None:
        since = until - PERIODS[period or "day"]
    elif period is not None:
        raise InvalidInput("Give either a period or since (and until), not both.")
    since, until = (
        since if since.tzinfo else since.replace(tzinfo=UTC),
        until if until.tzinfo else until.replace(tzinfo=UTC),
    )
    if since >= until:
        raise InvalidInput(f"since ({since.isoformat()}) must be before until ({until.isoformat()}).")
    if until - since > MAX_PERIOD:
        raise InvalidInput(f"A period is at most {MAX_PERIOD.days} days; got {(until - since).days}.")
    return since, until


def bucket_seconds(span: timedelta) -> int:
    """Minutes up to two hours, hours up to eight days, days beyond."""
    if span <= timedelta(hours=2):
        return 60
    if span <= timedelta(days=8):
        return 3600
    return 86400


def bucket_number(dialect: str, width: int, at: ColumnElement) -> ColumnElement:
    """The number of the `width`-second bucket the timestamp `at` falls in, counted from the
    epoch. Literal arguments, not bound ones: PostgreSQL must see GROUP BY's expression as the
    SELECT's."""
    seconds = literal_column(str(width))
    if dialect == "sqlite":  # UTC text; integer division
        return cast(func.strftime(literal_column("'%s'"), at), Integer).op("/")(seconds)
    return cast(func.floor(extract("epoch", at).op("/")(seconds)), BigInteger)


def bucket_numbers(since: datetime, until: datetime, width: int) -> range:
    """Every bucket of the period, empty ones included, for charts without gaps."""
    return range(int(since.timestamp()) // width, math.ceil(until.timestamp() / width))


def bucket_start(number: int, width: int) -> datetime:
    return datetime.fromtimestamp(number * width, UTC)
