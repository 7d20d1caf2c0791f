"""Cron expressions as staff write them: read into the sets arq's cron machinery takes, next run
times from arq's next_cron, and a refusal naming the field for each mistake."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from arq.cron import next_cron

from app.core.errors import InvalidInput
from app.schedules.cron import next_run, parse

# Friday 31 January 2025, 12:00:30 UTC.
START = datetime(2025, 1, 31, 12, 0, 30, tzinfo=UTC)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


NEXT_TIMES = [
    ("* * * * *", at(2025, 1, 31, 12, 1)),
    ("*/15 * * * *", at(2025, 1, 31, 12, 15)),
    ("0 * * * *", at(2025, 1, 31, 13, 0)),
    ("30 2 * * *", at(2025, 2, 1, 2, 30)),
    ("0 3 * * mon", at(2025, 2, 3, 3, 0)),
    ("0 3 * * 1", at(2025, 2, 3, 3, 0)),
    # Sunday is 0 or 7.
    ("30 2 * * 0", at(2025, 2, 2, 2, 30)),
    ("30 2 * * 7", at(2025, 2, 2, 2, 30)),
    ("30 2 * * SUN", at(2025, 2, 2, 2, 30)),
    ("0 9-17/4 * * mon-fri", at(2025, 1, 31, 13, 0)),
    ("5,10-12 14 * * *", at(2025, 1, 31, 14, 5)),
    ("0 0 1 * *", at(2025, 2, 1, 0, 0)),
    ("0 0 1 jan *", at(2026, 1, 1, 0, 0)),
    ("0 0 1 1-3/2 *", at(2025, 3, 1, 0, 0)),
    ("15 10 * feb,aug *", at(2025, 2, 1, 10, 15)),
    ("10/20 12 * * *", at(2025, 1, 31, 12, 10)),
    # Day of month and day of week both restricted: either one matches (1st, 15th, or Monday).
    ("0 0 1,15 * mon", at(2025, 2, 1, 0, 0)),
    ("0 0 10 * mon", at(2025, 2, 3, 0, 0)),
    # One of them starting with * : both must match (the 3rd, 5th... that is a Monday).
    ("0 0 */2 * mon", at(2025, 2, 3, 0, 0)),
    # Only in leap years.
    ("0 0 29 feb *", at(2028, 2, 29, 0, 0)),
    # The 31st of February never comes, so only Mondays in February count.
    ("0 0 31 2 mon", at(2025, 2, 3, 0, 0)),
    # Surrounding whitespace and runs of spaces are fine.
    ("  0   3 * *   mon ", at(2025, 2, 3, 3, 0)),
]


@pytest.mark.parametrize(("expression", "expected"), NEXT_TIMES)
def test_next_run_times(expression, expected):
    assert next_run(expression, START) == expected


def test_next_times_are_arq_next_cron_with_the_parsed_sets():
    expression = parse("0 9-17/4 * 1-6 mon-fri")
    assert (expression.minutes, expression.hours, expression.months) == ({0}, {9, 13, 17}, {1, 2, 3, 4, 5, 6})
    assert expression.weekdays == {1, 2, 3, 4, 5}  # cron's numbering
    arq_next = next_cron(
        START.replace(tzinfo=None),
        month={1, 2, 3, 4, 5, 6},
        weekday={0, 1, 2, 3, 4},  # arq counts from Monday
        hour={9, 13, 17},
        minute={0},
        second=0,
        microsecond=0,
    )
    assert expression.next_after(START) == arq_next.replace(tzinfo=UTC) == at(2025, 1, 31, 13, 0)


def _matches(expression, moment: datetime) -> bool:
    """The definition in `man 5 crontab`, minute by minute."""
    weekday = (moment.weekday() + 1) % 7
    day_ok = moment.day in expression.days
    weekday_ok = weekday in expression.weekdays
    if expression.days_restricted and expression.weekdays_restricted:
        either = day_ok or weekday_ok
    else:
        either = day_ok and weekday_ok
    return (
        moment.minute in expression.minutes
        and moment.hour in expression.hours
        and moment.month in expression.months
        and either
    )


@pytest.mark.parametrize(
    "text",
    ["*/7 */5 * * *", "0 0 1,15 * mon", "0 12 */3 * 2-4", "45 23 28-31 * *", "0 6 * * 6,0", "59 0 * 2 5"],
)
def test_every_run_in_two_weeks_is_the_one_crontab_defines(text):
    expression = parse(text)
    start = at(2025, 2, 20, 0, 0)  # across the end of February and into March
    end = start + timedelta(days=14)
    expected, moment = [], start
    while (moment := moment + timedelta(minutes=1)) < end:
        if _matches(expression, moment):
            expected.append(moment)
    found, moment = [], start
    while (moment := expression.next_after(moment)) < end:
        found.append(moment)
    assert found == expected and found


def test_times_are_utc_whatever_zone_the_moment_comes_in():
    in_new_york = START.astimezone(timezone(timedelta(hours=-5)))
    assert next_run("0 3 * * *", in_new_york) == at(2025, 2, 1, 3, 0)
    assert next_run("0 3 * * *", in_new_york).tzinfo == UTC


def test_the_next_time_is_strictly_after_the_moment():
    assert next_run("0 3 * * *", at(2025, 2, 1, 3, 0)) == at(2025, 2, 2, 3, 0)


BAD = [
    ("", "five fields"),
    ("* * * *", "has 4"),
    ("* * * * * *", "has 6"),
    ("60 * * * *", "minute field's '60' is out of range: minute values are 0-59"),
    ("* 24 * * *", "hour field's '24' is out of range: hour values are 0-23"),
    ("* * 0 * *", "day-of-month field's '0' is out of range: day-of-month values are 1-31"),
    ("* * 32 * *", "day-of-month field's '32' is out of range"),
    ("* * * 13 *", "month field's '13' is out of range: month values are 1-12"),
    ("* * * * 8", "day-of-week field's '8' is out of range: day-of-week values are 0-7"),
    ("* * * foo *", "month field's 'foo' is not a number or a name (jan, feb"),
    ("* * * * funday", "day-of-week field's 'funday' is not a number or a name (sun, mon"),
    ("x * * * *", "minute field's 'x' is not a number."),
    ("*/0 * * * *", "minute field's '*/0' needs a whole step of at least 1"),
    ("*/x * * * *", "minute field's '*/x' needs a whole step"),
    ("* 5-2 * * *", "hour field's range '5-2' runs backwards"),
    ("1,,2 * * * *", "minute field '1,,2' has an empty item"),
    ("-5 * * * *", "minute field's '-5' is not a number"),
    ("0 12 L * *", "day-of-month field's 'L' is not a number"),
    ("0 0 30 2 *", "day-of-month field '30' names no day that the month field '2' has"),
    ("0 0 31 4,6,9,11 *", "never run"),
    ("@daily", "five fields"),
    ("0 0 * * * " + "*" * 300, "at most 200 characters"),
]


@pytest.mark.parametrize(("expression", "message"), BAD)
def test_a_bad_expression_is_refused_naming_the_field(expression, message):
    with pytest.raises(InvalidInput) as refused:
        parse(expression)
    assert message in refused.value.message
    assert refused.value.status_code == 422
