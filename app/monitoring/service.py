"""Model monitoring: a model's (or one version's) figures over a period from the prediction
log, and feedback (the correct label) on logged predictions.

Every figure is aggregated by the database, grouped by time bucket over the (version_id, at)
index; Python only receives one row per bucket (and label, or latency bin). Latency
percentiles: PostgreSQL computes them exactly (percentile_cont); SQLite has no percentile
function, so it counts predictions per geometric latency bin (10% wide) and the percentiles
are interpolated from those counts, to within a bin's width.

Errors are the log's rows with `error` set: predictions that failed after their version was
chosen, sampled like the others (app/predict/prediction_log.py)."""

from collections import defaultdict
from datetime import datetime

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from app.auth.tables import User
from app.core.db import run_in_session
from app.core.errors import InvalidInput, NotFound
from app.core.roles import Role, require_role
from app.core.settings import get_settings
from app.core.time import utcnow
from app.core.time_buckets import bucket_number, bucket_numbers, bucket_seconds, bucket_start, checked_period
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

CONFIDENCE_BINS = 10
# Geometric latency bins for SQLite's percentiles: 0.05 ms to ~2 min, each 10% wider.
LATENCY_BIN_RATIO = 1.1
LATENCY_EDGES = [0.05 * LATENCY_BIN_RATIO**index for index in range(156)]

log = PredictionLog.__table__.c


def _bin_of(column: ColumnElement, edges: list[float], first: int = 0) -> ColumnElement:
    """The index of the bin between sorted `edges` that `column` falls in (0: below the first
    edge), as a balanced CASE tree: a handful of comparisons per row, and the same SQL on
    every database."""
    if not edges:
        return literal_column(str(first))
    middle = len(edges) // 2
    return case(
        (column < literal_column(repr(edges[middle])), _bin_of(column, edges[:middle], first)),
        else_=_bin_of(column, edges[middle + 1 :], first + middle + 1),
    )


def _percentile_from_bins(counts: dict[int, int], quantile: float) -> float | None:
    total = sum(counts.values())
    if not total:
        return None
    target = quantile * total
    seen = 0
    for index in sorted(counts):
        if seen + counts[index] >= target:
            low = LATENCY_EDGES[index - 1] if index > 0 else 0.0
            high = LATENCY_EDGES[index] if index < len(LATENCY_EDGES) else LATENCY_EDGES[-1]
            return round(low + (high - low) * (target - seen) / counts[index], 3)
        seen += counts[index]
    return round(LATENCY_EDGES[-1], 3)


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
    bucket = bucket_number(dialect, width, log.at).label("bucket")
    in_period = and_(log.version_id.in_(version_ids), log.at >= since, log.at < until)
    served = log.error.is_(None)

    def count_if(condition: ColumnElement) -> ColumnElement:
        return func.sum(case((condition, 1), else_=0))

    # One scan for everything but latency: counts per (bucket, label, confidence bin), a few
    # thousand groups at most, summed up here.
    confidence_bin = case(
        (log.confidence.is_(None), literal_column("-1")),
        else_=_bin_of(log.confidence, [i / CONFIDENCE_BINS for i in range(1, CONFIDENCE_BINS)]),
    ).label("confidence_bin")
    grouped = db_session.execute(
        select(
            bucket,
            log.label,
            confidence_bin,
            count_if(served),
            count_if(~served),
            count_if(and_(served, log.cached.is_(True))),
            count_if(log.feedback_label.is_not(None)),
            count_if(log.feedback_label == log.label),
        )
        .where(in_period)
        .group_by(bucket, log.label, confidence_bin)
    ).all()
    latencies, total_latency = _latency_percentiles(db_session, dialect, bucket, and_(in_period, served))

    rows: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    labels_by_bucket: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    label_totals: dict[str, int] = defaultdict(int)
    confidence_rows: dict[int, int] = defaultdict(int)
    for number, label, confidence_index, *counts in grouped:
        counts = [int(value or 0) for value in counts]
        rows[int(number)] = [total + count for total, count in zip(rows[int(number)], counts, strict=True)]
        predictions = counts[0]
        if label is not None and predictions:  # embedders predict no label
            labels_by_bucket[int(number)][label] += predictions
            label_totals[label] += predictions
        if int(confidence_index) >= 0:
            confidence_rows[int(confidence_index)] += predictions
    buckets = []
    for number in bucket_numbers(since, until, width):
        predictions, errors, hits, feedback, correct = rows.get(number, [0] * 5)
        p50, p95 = latencies.get(number, (None, None))
        buckets.append(
            TimeBucket(
                start=bucket_start(number, width),
                predictions=predictions,
                errors=errors,
                cache_hits=hits,
                cache_hit_rate=_rate(hits, predictions),
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                feedback=feedback,
                correct=correct,
                accuracy=_rate(correct, feedback),
                labels=dict(labels_by_bucket.get(number, {})),
            )
        )
    sums = [sum(values) for values in zip(*rows.values(), strict=True)] if rows else [0, 0, 0, 0, 0]
    predictions, errors, hits, feedback, correct = sums
    return MonitoringFigures(
        model=model_name,
        version=version_number,
        since=since,
        until=until,
        bucket_seconds=width,
        sample_rate=get_settings().prediction_log_sample_rate,
        totals=Totals(
            predictions=predictions,
            errors=errors,
            cache_hits=hits,
            cache_hit_rate=_rate(hits, predictions),
            latency_p50_ms=total_latency[0],
            latency_p95_ms=total_latency[1],
            feedback=feedback,
            correct=correct,
            accuracy=_rate(correct, feedback),
            labels=dict(sorted(label_totals.items(), key=lambda item: -item[1])),
        ),
        buckets=buckets,
        confidence=[
            ConfidenceBin(
                low=index / CONFIDENCE_BINS, high=(index + 1) / CONFIDENCE_BINS, count=confidence_rows.get(index, 0)
            )
            for index in range(CONFIDENCE_BINS)
        ],
    )


def _latency_percentiles(
    db_session: Session, dialect: str, bucket: ColumnElement, where: ColumnElement
) -> tuple[dict[int, tuple[float | None, float | None]], tuple[float | None, float | None]]:
    """(p50, p95) per bucket and over the whole period, in milliseconds."""
    if dialect == "postgresql":

        def quantiles() -> list[ColumnElement]:
            return [func.percentile_cont(q).within_group(log.latency_ms) for q in (0.5, 0.95)]

        # ROLLUP: a row per bucket, and one more (bucket NULL) over the whole period.
        found = db_session.execute(select(bucket, *quantiles()).where(where).group_by(func.rollup(bucket))).all()
        per_bucket = {number: (round(p50, 3), round(p95, 3)) for number, p50, p95 in found if number is not None}
        overall = next(((p50, p95) for number, p50, p95 in found if number is None), (None, None))
        return (
            {int(number): quantiles for number, quantiles in per_bucket.items()},
            tuple(round(value, 3) if value is not None else None for value in overall),
        )
    latency_bin = _bin_of(log.latency_ms, LATENCY_EDGES).label("latency_bin")
    counts: dict[int, dict[int, int]] = defaultdict(dict)
    merged: dict[int, int] = defaultdict(int)
    for number, index, count in db_session.execute(
        select(bucket, latency_bin, func.count()).where(where).group_by(bucket, latency_bin)
    ).all():
        counts[int(number)][int(index)] = count
        merged[int(index)] += count
    return (
        {
            number: (_percentile_from_bins(bins, 0.5), _percentile_from_bins(bins, 0.95))
            for number, bins in counts.items()
        },
        (_percentile_from_bins(merged, 0.5), _percentile_from_bins(merged, 0.95)),
    )


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
    return FeedbackResult(
        prediction_id=prediction_id,
        model=model.name,
        version=version.number,
        predicted_label=row.label,
        label=label,
        correct=row.label == label,
    )
