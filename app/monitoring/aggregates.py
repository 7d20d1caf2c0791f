"""The prediction log's figures as counts that add up: the SQL that groups log rows into them
(per time bucket, and per version for the hourly rollups), and the tally that sums groups from
the log and from rollups alike. Because both paths add the same counts, figures read from
rollups are the figures of the raw log (latency percentiles: to within a latency bin).

Latency bins are geometric (0.05 ms to ~2 min, each 10% wider): percentiles interpolated from
their counts are within a bin's width of the exact ones."""

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import Select, and_, case, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from app.predict.tables import PredictionLog

CONFIDENCE_BINS = 10
LATENCY_BIN_RATIO = 1.1
LATENCY_EDGES = [0.05 * LATENCY_BIN_RATIO**index for index in range(156)]

log = PredictionLog.__table__.c
served = log.error.is_(None)


def bin_of(column: ColumnElement, edges: list[float], first: int = 0) -> ColumnElement:
    """The index of the bin between sorted `edges` that `column` falls in (0: below the first
    edge), as a balanced CASE tree: a handful of comparisons per row, and the same SQL on
    every database."""
    if not edges:
        return literal_column(str(first))
    middle = len(edges) // 2
    return case(
        (column < literal_column(repr(edges[middle])), bin_of(column, edges[:middle], first)),
        else_=bin_of(column, edges[middle + 1 :], first + middle + 1),
    )


def percentile_from_bins(counts: dict[int, int], quantile: float) -> float | None:
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


def _count_if(condition: ColumnElement) -> ColumnElement:
    return func.sum(case((condition, 1), else_=0))


def counts_query(keys: list[ColumnElement], where: ColumnElement) -> Select:
    """Rows of (*keys, label, confidence bin, served, errors, cache hits, feedback, correct):
    one scan for everything but latency, a few thousand groups at most."""
    confidence_bin = case(
        (log.confidence.is_(None), literal_column("-1")),
        else_=bin_of(log.confidence, [i / CONFIDENCE_BINS for i in range(1, CONFIDENCE_BINS)]),
    ).label("confidence_bin")
    return (
        select(
            *keys,
            log.label,
            confidence_bin,
            _count_if(served),
            _count_if(~served),
            _count_if(and_(served, log.cached.is_(True))),
            _count_if(log.feedback_label.is_not(None)),
            _count_if(log.feedback_label == log.label),
        )
        .where(where)
        .group_by(*keys, log.label, confidence_bin)
    )


def latency_query(keys: list[ColumnElement], where: ColumnElement) -> Select:
    """Rows of (*keys, latency bin, served predictions in it)."""
    latency_bin = bin_of(log.latency_ms, LATENCY_EDGES).label("latency_bin")
    return select(*keys, latency_bin, func.count()).where(and_(where, served)).group_by(*keys, latency_bin)


@dataclass
class Tally:
    """A time bucket's (or an hour's) counts. Labels, confidence and latency bins count served
    predictions; embedders predict no label and no confidence."""

    predictions: int = 0
    errors: int = 0
    cache_hits: int = 0
    feedback: int = 0
    correct: int = 0
    labels: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    confidence: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    latency: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def add_group(self, label: str | None, confidence_bin: int, counts: list) -> None:
        """One row of counts_query (after its keys)."""
        predictions, errors, hits, feedback, correct = (int(value or 0) for value in counts)
        self.predictions += predictions
        self.errors += errors
        self.cache_hits += hits
        self.feedback += feedback
        self.correct += correct
        if label is not None and predictions:
            self.labels[label] += predictions
        if int(confidence_bin) >= 0:
            self.confidence[int(confidence_bin)] += predictions

    def add(self, other: "Tally") -> None:
        self.predictions += other.predictions
        self.errors += other.errors
        self.cache_hits += other.cache_hits
        self.feedback += other.feedback
        self.correct += other.correct
        for mine, theirs in ((self.labels, other.labels), (self.confidence, other.confidence)):
            for key, count in theirs.items():
                mine[key] += count
        for key, count in other.latency.items():
            self.latency[key] += count
