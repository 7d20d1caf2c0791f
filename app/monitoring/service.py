"""Model monitoring: a model's (or one version's) figures over a period from the prediction
log, and feedback (the correct label) on logged predictions.

Every figure is aggregated by the database, grouped by time bucket over the (version_id, at)
index; Python only receives one row per bucket (and label, or latency bin). With buckets of an
hour or more, the complete hours come from the hourly rollups (app/monitoring/rollups.py) and
only the rest from the log, with the same counts. Latency percentiles: PostgreSQL computes
them exactly (percentile_cont) when no rollup is used; otherwise (and always on SQLite, which
has no percentile function) they are interpolated from counts per geometric latency bin (10%
wide), to within a bin's width.

Errors are the log's rows with `error` set: predictions that failed after their version was
chosen, sampled like the others (app/predict/prediction_log.py)."""

from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from app.auth.tables import User
from app.core.db import run_in_session
from app.core.errors import InvalidInput, NotFound
from app.core.roles import Role, require_role
from app.core.settings import get_settings
from app.core.time import utcnow
from app.core.time_buckets import bucket_number, bucket_numbers, bucket_seconds, bucket_start, checked_period
from app.monitoring import rollups
from app.monitoring.aggregates import CONFIDENCE_BINS, Tally, counts_query, latency_query, percentile_from_bins
from app.monitoring.schemas import (
    ConfidenceBin,
    FeedbackResult,
    MonitoringFigures,
    Period,
    TimeBucket,
    Totals,
)
from app.predict import prediction_log
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel

log = PredictionLog.__table__.c


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _versions(db_session: Session, model_name: str, version_number: int | None) -> dict[int, int]:
    """{version id: number} of the model's versions, or of the one asked for."""
    model = db_session.execute(select(RegisteredModel).where(RegisteredModel.name == model_name)).scalars().first()
    if model is None:
        raise NotFound(f"No model named {model_name!r}.")
    query = select(ModelVersion.id, ModelVersion.number).where(ModelVersion.model_id == model.id)
    if version_number is not None:
        query = query.where(ModelVersion.number == version_number)
    versions = dict(db_session.execute(query).all())
    if version_number is not None and not versions:
        raise NotFound(f"{model_name!r} has no version {version_number}.")
    return versions


def figures(
    *,
    db_session: Session,
    actor: User,
    model_name: str,
    version_number: int | None = None,
    period: Period | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MonitoringFigures:
    """A model's figures (all its versions, or one) over `period` ending now (default: a day)
    or from `since` to `until` (default now). Staff only. Raises NotFound, InvalidInput."""
    require_role(actor, Role.staff)
    since, until = checked_period(period, since, until)
    version_ids = list(_versions(db_session, model_name, version_number))
    width = bucket_seconds(until - since)
    dialect = db_session.get_bind().dialect.name
    tallies: dict[int, Tally] = defaultdict(Tally)
    # Buckets of whole hours take the hourly rollups, and the log only where they do not reach.
    rolled, ranges = (
        rollups.read(db_session, version_ids, since, until) if width % rollups.HOUR == 0 else ({}, [(since, until)])
    )
    for hour, tally in rolled.items():
        tallies[hour * rollups.HOUR // width].add(tally)
    bucket = bucket_number(dialect, width, log.at).label("bucket")
    from_log = and_(log.version_id.in_(version_ids), rollups.in_ranges(ranges)) if ranges else None
    exact_latency = dialect == "postgresql" and not rolled
    if from_log is not None:
        for number, label, confidence_bin, *counts in db_session.execute(counts_query([bucket], from_log)).all():
            tallies[int(number)].add_group(label, confidence_bin, counts)
        if not exact_latency:
            for number, latency_bin, count in db_session.execute(latency_query([bucket], from_log)).all():
                tallies[int(number)].latency[int(latency_bin)] += count
    total = Tally()
    for tally in tallies.values():
        total.add(tally)
    if exact_latency:
        latencies, total_latency = _exact_latency_percentiles(db_session, bucket, from_log)
    else:
        latencies = {number: _binned_percentiles(tally.latency) for number, tally in tallies.items()}
        total_latency = _binned_percentiles(total.latency)
    buckets = []
    for number in bucket_numbers(since, until, width):
        tally = tallies.get(number, Tally())
        p50, p95 = latencies.get(number, (None, None))
        buckets.append(
            TimeBucket(
                start=bucket_start(number, width),
                predictions=tally.predictions,
                errors=tally.errors,
                cache_hits=tally.cache_hits,
                cache_hit_rate=_rate(tally.cache_hits, tally.predictions),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                feedback=tally.feedback,
                correct=tally.correct,
                accuracy=_rate(tally.correct, tally.feedback),
                labels=dict(sorted(tally.labels.items())),
            )
        )
    return MonitoringFigures(
        model=model_name,
        version=version_number,
        since=since,
        until=until,
        bucket_seconds=width,
        sample_rate=get_settings().prediction_log_sample_rate,
        totals=Totals(
            predictions=total.predictions,
            errors=total.errors,
            cache_hits=total.cache_hits,
            cache_hit_rate=_rate(total.cache_hits, total.predictions),
            latency_p50_ms=total_latency[0],
            latency_p95_ms=total_latency[1],
            feedback=total.feedback,
            correct=total.correct,
            accuracy=_rate(total.correct, total.feedback),
            labels=dict(sorted(total.labels.items(), key=lambda item: (-item[1], item[0]))),
        ),
        buckets=buckets,
        confidence=[
            ConfidenceBin(
                low=index / CONFIDENCE_BINS, high=(index + 1) / CONFIDENCE_BINS, count=total.confidence.get(index, 0)
            )
            for index in range(CONFIDENCE_BINS)
        ],
    )


def _binned_percentiles(bins: dict[int, int]) -> tuple[float | None, float | None]:
    return percentile_from_bins(bins, 0.5), percentile_from_bins(bins, 0.95)


def _exact_latency_percentiles(
    db_session: Session, bucket: ColumnElement, where: ColumnElement | None
) -> tuple[dict[int, tuple[float | None, float | None]], tuple[float | None, float | None]]:
    """PostgreSQL's exact (p50, p95) per bucket and over the whole period, in milliseconds, of
    the served predictions `where` selects (all of the period's when no rollup was used)."""
    if where is None:
        return {}, (None, None)
    quantiles = [func.percentile_cont(q).within_group(log.latency_ms) for q in (0.5, 0.95)]
    # ROLLUP: a row per bucket, and one more (bucket NULL) over the whole period.
    found = db_session.execute(
        select(bucket, *quantiles).where(and_(where, log.error.is_(None))).group_by(func.rollup(bucket))
    ).all()
    per_bucket = {int(number): (round(p50, 3), round(p95, 3)) for number, p50, p95 in found if number is not None}
    overall = next(((p50, p95) for number, p50, p95 in found if number is None), (None, None))
    return per_bucket, tuple(round(value, 3) if value is not None else None for value in overall)


def logged_since(*, db_session: Session, actor: User, since: datetime) -> dict[str, int]:
    """Logged predictions that were served (not failed) since `since`, per model name, for
    every model with any. Counts of the log, so of its sample (plus every Predict page
    prediction). Any signed-in user: the Models page shows viewers served counts too."""
    require_role(actor, Role.viewer)
    rows = db_session.execute(
        select(RegisteredModel.name, func.count())
        .select_from(PredictionLog)
        .join(ModelVersion, ModelVersion.id == log.version_id)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(log.at >= since, log.error.is_(None))
        .group_by(RegisteredModel.name)
    ).all()
    return {name: int(count) for name, count in rows}


async def give_feedback(*, actor: User, prediction_id: str, label: str) -> FeedbackResult:
    """Records the correct label of a logged prediction (the latest feedback wins). Any
    signed-in user: every viewer may use every model. The samples this process has not
    written yet are written first, so that feedback right after a prediction finds it.
    Raises NotFound, InvalidInput."""
    require_role(actor, Role.viewer)
    await prediction_log.write_pending()
    return await run_in_session(_record_feedback, actor=actor, prediction_id=prediction_id, label=label)


def _record_feedback(*, db_session: Session, actor: User, prediction_id: str, label: str) -> FeedbackResult:
    row = (
        db_session.execute(select(PredictionLog).where(PredictionLog.prediction_id == prediction_id)).scalars().first()
    )
    if row is None:
        raise NotFound(f"No logged prediction {prediction_id!r} (only logged predictions return an id).")
    version = db_session.get(ModelVersion, row.version_id)
    model = db_session.get(RegisteredModel, version.model_id)
    names = [spec["name"] for spec in version.labels]
    if row.error is not None:
        raise InvalidInput(f"Prediction {prediction_id!r} failed ({row.error}): it has no label to correct.")
    if label not in names:
        allowed = ", ".join(names) if names else "none (it is not a classifier)"
        raise InvalidInput(f"{label!r} is not a label of {model.name} version {version.number}; its labels: {allowed}.")
    row.feedback_label = label
    row.feedback_at = utcnow()
    row.feedback_by = actor.email
    db_session.add(row)
    rollups.mark_stale(db_session=db_session, version_id=row.version_id, at=row.at)
    return FeedbackResult(
        prediction_id=prediction_id,
        model=model.name,
        version=version.number,
        predicted_label=row.label,
        label=label,
        correct=row.label == label,
    )
