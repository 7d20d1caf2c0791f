"""Hourly rollups of the prediction log, so that the Monitoring page reads a week as 168 rows
per version instead of every logged prediction.

A scheduled job (app/monitoring/rollup_jobs.py, every STRATA_MONITORING_ROLLUP_MINUTES) rolls up
every complete hour once its rows have been written (SETTLE after its end), and rolls the
last STRATA_MONITORING_ROLLUP_REROLL_HOURS again on every run for rows logged late. Rolling
an hour replaces its rows, so running twice changes nothing. Feedback given on a prediction
of a rolled-up hour marks that hour stale (mark_stale, in the feedback's transaction): the
figures read a stale hour from the log, and the next run rolls it again.

Figures with buckets of an hour or more (app/monitoring/service.py) take the complete hours
the rollups reach from here and read only the rest from the log: the partial hours at the
period's edges, hours not rolled up yet, and stale hours."""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from app.core.settings import get_settings
from app.core.time import utcnow
from app.core.time_buckets import bucket_number
from app.monitoring.aggregates import Tally, counts_query, latency_query, log
from app.monitoring.rollup_tables import PredictionRollup, RollupProgress

HOUR = 3600
# Log rows reach the database about a second after their prediction (app/core/write_behind.py):
# an hour is rolled up once it ended this long ago.
SETTLE = timedelta(minutes=2)
# A backlog (the first run over an existing log) is rolled a day per transaction.
CHUNK = timedelta(days=1)
PROGRESS_ID = 1

events = structlog.get_logger("strata.monitoring.rollups")


def floor_hour(moment: datetime) -> datetime:
    return datetime.fromtimestamp(int(moment.timestamp()) // HOUR * HOUR, UTC)


def ceil_hour(moment: datetime) -> datetime:
    return datetime.fromtimestamp(math.ceil(moment.timestamp() / HOUR) * HOUR, UTC)


def hour_number(moment: datetime) -> int:
    return int(moment.timestamp()) // HOUR


def _tally_of(row: PredictionRollup) -> Tally:
    tally = Tally(row.predictions, row.errors, row.cache_hits, row.feedback, row.correct)
    for label, count in row.labels.items():
        tally.labels[label] += count
    for index, count in row.confidence.items():
        tally.confidence[int(index)] += count
    for index, count in row.latency.items():
        tally.latency[int(index)] += count
    return tally


def _counts(tally: Tally) -> dict:
    return {
        "predictions": tally.predictions,
        "errors": tally.errors,
        "cache_hits": tally.cache_hits,
        "feedback": tally.feedback,
        "correct": tally.correct,
        "labels": dict(sorted(tally.labels.items())),
        "confidence": {str(index): count for index, count in sorted(tally.confidence.items())},
        "latency": {str(index): count for index, count in sorted(tally.latency.items())},
    }


def _roll(db_session: Session, since: datetime, until: datetime) -> int:
    """Replaces the rollups of every version for the hours from `since` to `until` (whole
    hours) by the log's counts; returns how many (version, hour) rows it wrote."""
    in_range = and_(PredictionRollup.hour >= since, PredictionRollup.hour < until)
    # Clearing `stale` first takes the rows' locks (PostgreSQL): feedback arriving while the
    # hour is counted waits, then marks the new rows stale, so that it is never lost.
    db_session.execute(update(PredictionRollup).where(in_range).values(stale=False))
    hour = bucket_number(db_session.get_bind().dialect.name, HOUR, log.at).label("hour")
    keys = [log.version_id, hour]
    where = and_(log.at >= since, log.at < until)
    tallies: dict[tuple[int, int], Tally] = {}
    for version_id, number, label, confidence_bin, *counts in db_session.execute(counts_query(keys, where)).all():
        tallies.setdefault((version_id, int(number)), Tally()).add_group(label, confidence_bin, counts)
    for version_id, number, latency_bin, count in db_session.execute(latency_query(keys, where)).all():
        tallies.setdefault((version_id, int(number)), Tally()).latency[int(latency_bin)] += count
    existing = {
        (row.version_id, hour_number(row.hour)): row
        for row in db_session.execute(select(PredictionRollup).where(in_range)).scalars()
    }
    now = utcnow()
    for key, tally in tallies.items():
        row = existing.pop(key, None) or PredictionRollup(
            version_id=key[0], hour=datetime.fromtimestamp(key[1] * HOUR, UTC), **_counts(Tally())
        )
        for name, value in _counts(tally).items():
            setattr(row, name, value)
        row.stale, row.rolled_at = False, now
        db_session.add(row)
    for row in existing.values():  # its log rows are gone (their version's history was deleted)
        db_session.delete(row)
    db_session.flush()
    return len(tallies)


@dataclass
class RollupRun:
    rolled_from: datetime | None
    rolled_until: datetime | None
    rows: int
    stale_hours: int


def roll_up(*, db_session: Session, now: datetime | None = None) -> RollupRun:
    """Rolls up the complete hours not rolled up yet, the last few again, and the stale ones.
    Run by the system (the scheduled job), so it takes no actor. Commits a day at a time."""
    ready_until = floor_hour((now or utcnow()) - SETTLE)
    progress = db_session.get(RollupProgress, PROGRESS_ID)
    if progress is None:
        first = db_session.execute(select(func.min(log.at))).scalar()
        start = floor_hour(first) if first is not None else ready_until
        progress = RollupProgress(id=PROGRESS_ID, rolled_until=start)
    else:
        reroll = timedelta(hours=get_settings().monitoring_rollup_reroll_hours)
        start = min(progress.rolled_until - reroll, ready_until)
    rows = 0
    chunk_start = start
    while chunk_start < ready_until:
        chunk_end = min(chunk_start + CHUNK, ready_until)
        rows += _roll(db_session, chunk_start, chunk_end)
        progress.rolled_until, progress.updated_at = max(progress.rolled_until, chunk_end), utcnow()
        db_session.add(progress)
        db_session.commit()
        chunk_start = chunk_end
    stale = db_session.execute(
        select(PredictionRollup.hour).where(PredictionRollup.stale.is_(True), PredictionRollup.hour < start).distinct()
    ).scalars()
    stale_hours = sorted(set(stale))
    for hour in stale_hours:
        rows += _roll(db_session, hour, hour + timedelta(hours=1))
    db_session.add(progress)
    db_session.commit()
    run = RollupRun(start if start < ready_until else None, progress.rolled_until, rows, len(stale_hours))
    events.info("monitoring.rolled_up", rows=rows, stale_hours=len(stale_hours), until=str(progress.rolled_until))
    return run


def mark_stale(*, db_session: Session, version_id: int, at: datetime) -> None:
    """Feedback changed the log row of `version_id` at `at`: its hour's rollup no longer holds."""
    db_session.execute(
        update(PredictionRollup)
        .where(PredictionRollup.version_id == version_id, PredictionRollup.hour == floor_hour(at))
        .values(stale=True)
    )


def read(
    db_session: Session, version_ids: list[int], since: datetime, until: datetime
) -> tuple[dict[int, Tally], list[tuple[datetime, datetime]]]:
    """The rolled-up complete hours of the period, as tallies by hour number (their versions
    summed), and the time ranges the figures must still read from the log."""
    first, last = ceil_hour(since), floor_hour(until)
    progress = db_session.get(RollupProgress, PROGRESS_ID)
    covered_until = min(last, progress.rolled_until) if progress else first
    if covered_until <= first:
        return {}, [(since, until)]
    rows = (
        db_session.execute(
            select(PredictionRollup).where(
                PredictionRollup.version_id.in_(version_ids),
                PredictionRollup.hour >= first,
                PredictionRollup.hour < covered_until,
            )
        )
        .scalars()
        .all()
    )
    stale = {hour_number(row.hour) for row in rows if row.stale}
    tallies: dict[int, Tally] = {}
    for row in rows:
        number = hour_number(row.hour)
        if number not in stale:
            tallies.setdefault(number, Tally()).add(_tally_of(row))
    ranges = [(since, first)] if since < first else []
    ranges += [
        (datetime.fromtimestamp(number * HOUR, UTC), datetime.fromtimestamp((number + 1) * HOUR, UTC))
        for number in sorted(stale)
    ]
    if covered_until < until:
        ranges.append((covered_until, until))
    return tallies, ranges


def in_ranges(ranges: list[tuple[datetime, datetime]]) -> ColumnElement:
    """Log rows inside any of the time ranges."""
    return or_(*(and_(log.at >= start, log.at < end) for start, end in ranges))
