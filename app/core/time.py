from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite gives datetimes back without their zone; Strata writes them in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
