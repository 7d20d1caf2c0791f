"""Standard 5-field cron expressions (minute hour day-of-month month day-of-week), read into
the sets of values arq's cron machinery uses, with next run times from arq's own next_cron.

Every time is UTC. Each field takes numbers, `*`, ranges `a-b`, lists `a,b`, steps `*/n`,
`a-b/n` and `a/n` (from a to the field's end); months and weekdays may be named (jan-dec,
sun-sat). Sunday is 0 or 7.

Day of month and day of week combine as in Vixie cron (what `man 5 crontab` describes): when
both are restricted (neither field starts with `*`) a day matches if EITHER matches, so
`0 0 1,15 * mon` runs on the 1st, the 15th and every Monday; otherwise both must match.
arq's next_cron always requires both, so the either-case asks it twice and takes the earlier."""

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

from arq.cron import next_cron

from app.core.errors import InvalidInput

MAX_EXPRESSION_LENGTH = 200
# English names whatever the locale (calendar.month_abbr follows it).
MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
WEEKDAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
# The most days each month can have (February in a leap year).
MONTH_LENGTHS = {month: calendar.monthrange(2024, month)[1] for month in range(1, 13)}


@dataclass(frozen=True)
class Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None

    @property
    def every(self) -> frozenset[int]:
        return frozenset(range(self.low, self.high + 1))


MINUTE = Field("minute", 0, 59)
HOUR = Field("hour", 0, 23)
DAY = Field("day-of-month", 1, 31)
MONTH = Field("month", 1, 12, MONTH_NAMES)
# 7 is read as Sunday, like 0.
WEEKDAY = Field("day-of-week", 0, 7, WEEKDAY_NAMES)
FIELDS = (MINUTE, HOUR, DAY, MONTH, WEEKDAY)
FIELD_ORDER = " ".join(field.name for field in FIELDS)


@dataclass(frozen=True)
class CronExpression:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # cron's numbering: 0 is Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def next_after(self, moment: datetime) -> datetime:
        """The first time after `moment` (aware, any zone) that the expression names, in UTC."""
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        common = {
            "month": _option(self.months, MONTH),
            "hour": _option(self.hours, HOUR),
            "minute": _option(self.minutes, MINUTE),
            "second": 0,
            "microsecond": 0,
        }
        # arq counts weekdays from Monday (0) like datetime.weekday(); cron from Sunday.
        weekdays = {(day - 1) % 7 for day in self.weekdays}
        days = None if self.days == DAY.every else set(self.days)
        weekday_option = None if len(weekdays) == 7 else weekdays
        if self.days_restricted and self.weekdays_restricted:
            candidates = [next_cron(naive, weekday=weekday_option, **common)]
            if _day_possible(self.days, self.months):
                candidates.append(next_cron(naive, day=days, **common))
            found = min(candidates)
        else:
            found = next_cron(naive, day=days, weekday=weekday_option, **common)
        return found.replace(tzinfo=UTC)


def _option(values: frozenset[int], field: Field) -> set[int] | None:
    """None (any value) for a field that allows every value: arq then skips its check."""
    return None if values == field.every else set(values)


def _day_possible(days: frozenset[int], months: frozenset[int]) -> bool:
    return any(day <= MONTH_LENGTHS[month] for day in days for month in months)


def _value(text: str, field: Field, item: str) -> int:
    lowered = text.lower()
    if field.names and lowered in field.names:
        return field.names[lowered]
    if not text.isdigit():
        named = f" or a name ({', '.join(field.names)})" if field.names else ""
        raise InvalidInput(f"The {field.name} field's {item!r} is not a number{named}.")
    number = int(text)
    if not field.low <= number <= field.high:
        raise InvalidInput(
            f"The {field.name} field's {item!r} is out of range: {field.name} values are {field.low}-{field.high}."
        )
    return number


def _item_values(item: str, field: Field) -> set[int]:
    """The values of one comma-separated item: `*`, `n`, `a-b`, each with an optional `/step`."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise InvalidInput(f"The {field.name} field's {item!r} needs a whole step of at least 1 after '/'.")
        step = int(step_text)
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        start, _, end = base.partition("-")
        low, high = _value(start, field, item), _value(end, field, item)
        if low > high:
            raise InvalidInput(
                f"The {field.name} field's range {item!r} runs backwards; write the smaller value first."
            )
    else:
        low = _value(base, field, item)
        # `a/n` runs from a to the field's end.
        high = field.high if slash else low
    return set(range(low, high + 1, step))


def _field_values(text: str, field: Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise InvalidInput(
                f"The {field.name} field {text!r} has an empty item; separate values with single commas."
            )
        values |= _item_values(item, field)
    if field is WEEKDAY and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def parse(expression: str) -> CronExpression:
    """The expression read, or InvalidInput naming the field at fault."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidInput(f"A cron expression is five fields: {FIELD_ORDER}, for example '0 3 * * mon'.")
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise InvalidInput(f"A cron expression is at most {MAX_EXPRESSION_LENGTH} characters.")
    parts = expression.split()
    if len(parts) != len(FIELDS):
        raise InvalidInput(
            f"A cron expression has five fields ({FIELD_ORDER}), for example '0 3 * * mon';"
            f" {expression.strip()!r} has {len(parts)}."
        )
    minutes, hours, days, months, weekdays = (
        _field_values(text, field) for text, field in zip(parts, FIELDS, strict=True)
    )
    days_restricted = not parts[2].startswith("*")
    weekdays_restricted = not parts[4].startswith("*")
    if not _day_possible(days, months) and not (days_restricted and weekdays_restricted):
        raise InvalidInput(
            f"The day-of-month field {parts[2]!r} names no day that the month field {parts[3]!r} has,"
            " so the schedule would never run."
        )
    return CronExpression(
        expression=" ".join(parts),
        minutes=minutes,
        hours=hours,
        days=days,
        months=months,
        weekdays=weekdays,
        days_restricted=days_restricted,
        weekdays_restricted=weekdays_restricted,
    )


def next_run(expression: str, after: datetime) -> datetime:
    return parse(expression).next_after(after)
