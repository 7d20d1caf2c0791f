"""Hourly rollups: the Monitoring figures read from them are the figures of the raw log, also
after late rows and feedback, and rolling up again changes nothing."""

import math
import random
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, insert, select
from sqlmodel import Session

from app.auth.service import SYSTEM
from app.core.db import get_engine, session_scope
from app.core.time import utcnow
from app.monitoring import rollups, service
from app.monitoring.rollup_tables import PredictionRollup, RollupProgress
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel
from jobs.worker import worker_settings
from models.classifier import CLASSIFIER_NAME
from models.manifest import EMBEDDER_NAME

pytestmark = pytest.mark.usefixtures("builtin_models")

LABELS = ["business", "entertainment", "politics", "sport", "tech"]
LATENCY_FIELDS = ("latency_p50_ms", "latency_p95_ms")
# Now, for these tests: 37 minutes into an hour, so that periods end inside an hour.
NOW = rollups.floor_hour(utcnow()) - timedelta(hours=1) + timedelta(minutes=37)


def _version_id(model_name: str) -> int:
    with session_scope() as db_session:
        return db_session.execute(
            select(ModelVersion.id).join(RegisteredModel).where(RegisteredModel.name == model_name)
        ).scalar_one()


def _log_rows(count: int, hours: float, seed: int = 7) -> list[dict]:
    """`count` classifier and embedder predictions over the `hours` before NOW: labels,
    confidences and latencies of every kind, some cached, some failed, some with feedback."""
    chooser = random.Random(seed)
    classifier, embedder = _version_id(CLASSIFIER_NAME), _version_id(EMBEDDER_NAME)
    rows = []
    for index in range(count):
        at = NOW - timedelta(seconds=chooser.uniform(0, hours * 3600))
        if index % 5 == 4:  # an embedder: no label, no confidence
            rows.append(_row(at, embedder, chooser.lognormvariate(1.5, 0.6), None, None))
            continue
        label = chooser.choice(LABELS)
        row = _row(at, classifier, chooser.lognormvariate(2.0, 0.8), label, round(chooser.random(), 3))
        row["cached"] = chooser.random() < 0.25
        if chooser.random() < 0.02:
            row.update(label=None, confidence=None, error="RuntimeError")
        elif chooser.random() < 0.1:
            row["feedback_label"] = label if chooser.random() < 0.8 else chooser.choice(LABELS)
        rows.append(row)
    with session_scope() as db_session:
        db_session.execute(insert(PredictionLog), rows)
    return rows


def _row(at: datetime, version_id: int, latency_ms: float, label: str | None, confidence: float | None) -> dict:
    return {
        "at": at,
        "version_id": version_id,
        "caller": "key:1",
        "latency_ms": round(latency_ms, 3),
        "label": label,
        "confidence": confidence,
        "input_sha256": "0" * 64,
        "cached": False,
    }


def _figures(**period) -> dict:
    with session_scope() as db_session:
        return service.figures(db_session=db_session, actor=SYSTEM, model_name=CLASSIFIER_NAME, **period).model_dump()


def _raw_figures(**period) -> dict:
    """The same figures from the log alone: as before any rollup (in a transaction undone after)."""
    with Session(get_engine()) as db_session:
        db_session.execute(delete(RollupProgress))
        figures = service.figures(db_session=db_session, actor=SYSTEM, model_name=CLASSIFIER_NAME, **period)
        db_session.rollback()
    return figures.model_dump()


def _without_latency(figures: dict) -> dict:
    return {
        **figures,
        "totals": {k: v for k, v in figures["totals"].items() if k not in LATENCY_FIELDS},
        "buckets": [{k: v for k, v in b.items() if k not in LATENCY_FIELDS} for b in figures["buckets"]],
    }


def _assert_same(rolled: dict, raw: dict, database_url: str, rows: list[dict] | None = None) -> None:
    """Every count identical. Latency percentiles: identical where both come from latency bins
    (SQLite). PostgreSQL's raw ones are exact (percentile_cont, interpolating between the two
    samples around the quantile), the rolled-up ones interpolated in latency bins: each is
    within a bin (10%) of the samples around its quantile, taken from `rows`."""
    assert _without_latency(rolled) == _without_latency(raw)
    if database_url.startswith("sqlite"):
        assert rolled == raw
        return
    if rows is None:
        return
    classifier = _version_id(CLASSIFIER_NAME)
    width = timedelta(seconds=rolled["bucket_seconds"])
    spans = [(rolled["since"], rolled["until"], rolled["totals"])] + [
        (max(b["start"], rolled["since"]), min(b["start"] + width, rolled["until"]), b) for b in rolled["buckets"]
    ]
    for start, end, figures in spans:
        served = sorted(
            r["latency_ms"]
            for r in rows
            if r["version_id"] == classifier and not r.get("error") and start <= r["at"] < end
        )
        for name, quantile in zip(LATENCY_FIELDS, (0.5, 0.95), strict=True):
            if not served:
                assert figures[name] is None
                continue
            rank = quantile * (len(served) - 1)
            low = served[max(0, math.floor(rank) - 1)] / 1.1
            high = served[min(len(served) - 1, math.ceil(rank) + 1)] * 1.1
            assert low <= figures[name] <= high, (start, name, figures[name], low, high)


PERIODS = {
    "a day ending inside an hour": {"period": "day", "until": NOW},
    "a week": {"period": "week", "until": NOW},
    "from and until inside hours": {"since": NOW - timedelta(hours=26, minutes=13), "until": NOW},
    "ten days, in day buckets": {"since": NOW - timedelta(days=10, minutes=5), "until": NOW},
}


async def test_figures_from_rollups_are_those_of_the_raw_log(database_url):
    rows = _log_rows(3000, hours=40)
    raw = {name: _raw_figures(**period) for name, period in PERIODS.items()}
    with session_scope() as db_session:
        run = rollups.roll_up(db_session=db_session, now=NOW)
    assert run.rolled_until == rollups.floor_hour(NOW)
    with session_scope() as db_session:
        rolled_hours = db_session.execute(select(PredictionRollup.hour).distinct()).scalars().all()
    assert 39 <= len(rolled_hours) <= 41  # every complete hour with predictions, not the current one

    # Inside a period, the complete hours come from the rollups, only the edges from the log.
    since, until = PERIODS["from and until inside hours"]["since"], NOW
    with session_scope() as db_session:
        hours, from_log = rollups.read(db_session, [_version_id(CLASSIFIER_NAME)], since, until)
    assert len(hours) == 25
    assert from_log == [(since, rollups.ceil_hour(since)), (rollups.floor_hour(until), until)]
    for name, period in PERIODS.items():
        rolled = _figures(**period)
        assert rolled["totals"]["predictions"] > 0, name
        _assert_same(rolled, raw[name], database_url, rows)
    assert raw["a week"]["totals"]["feedback"] > 50 and raw["a week"]["totals"]["errors"] > 10


async def test_feedback_and_late_rows_after_a_rollup_still_count(database_url, viewer):
    _log_rows(600, hours=6, seed=11)
    with session_scope() as db_session:
        rollups.roll_up(db_session=db_session, now=NOW)
    day = {"period": "day", "until": NOW}
    before = _figures(**day)

    # Feedback on a prediction of a rolled-up hour: the figures see it at once.
    with session_scope() as db_session:
        row = db_session.execute(
            select(PredictionLog)
            .where(PredictionLog.feedback_label.is_(None), PredictionLog.label.is_not(None))
            .where(PredictionLog.at < rollups.floor_hour(NOW) - timedelta(hours=2))
            .limit(1)
        ).scalar_one()
        prediction_id = f"p{row.id}"
        row.prediction_id = prediction_id
        wrong = next(label for label in LABELS if label != row.label)
    await service.give_feedback(actor=viewer, prediction_id=prediction_id, label=wrong)
    after = _figures(**day)
    assert after["totals"]["feedback"] == before["totals"]["feedback"] + 1
    assert after["totals"]["correct"] == before["totals"]["correct"]
    _assert_same(after, _raw_figures(**day), database_url)
    with session_scope() as db_session:
        assert db_session.execute(select(PredictionRollup).where(PredictionRollup.stale.is_(True))).all()

    # A row logged late into the last complete hour: the next run rolls that hour again.
    late = _row(rollups.floor_hour(NOW) - timedelta(minutes=30), _version_id(CLASSIFIER_NAME), 4.0, "tech", 0.9)
    with session_scope() as db_session:
        db_session.execute(insert(PredictionLog), [late])
        rollups.roll_up(db_session=db_session, now=NOW)
    with session_scope() as db_session:
        assert not db_session.execute(select(PredictionRollup).where(PredictionRollup.stale.is_(True))).all()
    again = _figures(**day)
    assert again["totals"]["predictions"] == before["totals"]["predictions"] + 1
    _assert_same(again, _raw_figures(**day), database_url)


def _rollup_table() -> list[tuple]:
    with session_scope() as db_session:
        rows = db_session.execute(select(PredictionRollup).order_by(PredictionRollup.version_id, PredictionRollup.hour))
        return [
            (r.version_id, r.hour, r.predictions, r.errors, r.cache_hits, r.feedback, r.correct, r.labels, r.latency)
            for r in rows.scalars()
        ]


async def test_rolling_up_again_changes_nothing():
    _log_rows(400, hours=5, seed=3)
    with session_scope() as db_session:
        rollups.roll_up(db_session=db_session, now=NOW)
    first = _rollup_table()
    with session_scope() as db_session:
        rollups.roll_up(db_session=db_session, now=NOW + timedelta(minutes=10))
    assert _rollup_table() == first and len(first) >= 10


async def test_the_worker_rolls_up_on_its_schedule():
    _log_rows(200, hours=4, seed=5)
    crons = {job.name: job for job in worker_settings()["cron_jobs"]}
    rollup = crons["monitoring.rollup"]
    assert rollup.unique and rollup.run_at_startup and rollup.minute == set(range(0, 60, 5))
    await rollup.coroutine({})
    with session_scope() as db_session:
        progress = db_session.get(RollupProgress, rollups.PROGRESS_ID)
        hours = db_session.execute(select(PredictionRollup.hour).distinct()).scalars().all()
    assert progress.rolled_until == rollups.floor_hour(utcnow() - rollups.SETTLE)
    assert len(hours) >= 3
