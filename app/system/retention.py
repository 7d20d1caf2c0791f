"""Retention of what piles up in the database while Strata runs: finished job rows and
prediction-log rows (temporary files: app/system/temp_files.py). The scheduled sweep
(app/system/retention_jobs.py) deletes in batches of at most RETENTION_BATCH_ROWS rows, each its
own short transaction, so a large first sweep neither holds a long lock nor blocks the writers
of new rows.

Every retention job (this sweep, the audit log's and the usage log's) records when it last ran
and what it removed (`record_run`), for the System page's Storage section."""

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, func, or_, select
from sqlmodel import Session, col

from app.batch.tables import BatchRun
from app.core.clients import get_async_redis
from app.core.settings import get_settings
from app.core.time import as_utc, utcnow
from app.knowledge.tables import Document, DocumentStatus
from app.monitoring.rollup_tables import PredictionRollup, RollupProgress
from app.monitoring.rollups import PROGRESS_ID
from app.predict.tables import PredictionLog
from app.schedules.tables import Schedule
from app.training.tables import TrainingRun
from jobs.tables import Job, JobStatus

log = structlog.get_logger("strata.retention")

RETENTION_BATCH_ROWS = 5000
FINISHED = [JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value]


# ------------------------------------------------------------------ job rows


def _still_referenced() -> list:
    """Jobs whose row something else still reads: a training run's or a batch run's (their
    status and progress are the job's), a schedule's last run, and the ingestion of a document
    not yet settled (its failure reason is read from the job)."""
    pending = [DocumentStatus.queued.value, DocumentStatus.ingesting.value]
    return [
        col(Job.id).in_(select(TrainingRun.job_id)),
        col(Job.id).in_(select(BatchRun.job_id)),
        col(Job.id).in_(select(Schedule.last_job_id).where(col(Schedule.last_job_id).is_not(None))),
        col(Job.id).in_(
            select(Document.job_id).where(col(Document.job_id).is_not(None), col(Document.status).in_(pending))
        ),
    ]


def delete_finished_jobs_batch(*, db_session: Session, cutoff: datetime, limit: int = RETENTION_BATCH_ROWS) -> int:
    """Deletes up to `limit` job rows that finished (succeeded, failed or cancelled) before
    `cutoff` and that nothing references; queued and running jobs are never touched.
    Returns how many."""
    ids = list(
        db_session.execute(
            select(Job.id)
            .where(col(Job.status).in_(FINISHED))
            .where(func.coalesce(Job.finished_at, Job.created_at) < cutoff)
            .where(~or_(*_still_referenced()))
            .order_by(col(Job.created_at))
            .limit(limit)
        ).scalars()
    )
    if ids:
        db_session.execute(delete(Job).where(col(Job.id).in_(ids)))
    return len(ids)


# ------------------------------------------------------------------ prediction log


def prediction_log_cutoff(*, db_session: Session, cutoff: datetime) -> datetime | None:
    """How far the prediction log may be pruned: up to `cutoff`, but only over hours already
    rolled up, not rolled again and not stale (app/monitoring/rollups.py), so that the Monitoring page's figures
    of older periods keep reading them from the rollups. None: nothing is rolled up yet."""
    progress = db_session.get(RollupProgress, PROGRESS_ID)
    if progress is None:
        return None
    # Each rollup rolls its last few hours again, and drops the rollup of an hour without rows.
    rerolled = timedelta(hours=get_settings().monitoring_rollup_reroll_hours)
    limit = min(cutoff, as_utc(progress.rolled_until) - rerolled)
    earliest_stale = db_session.execute(
        select(func.min(PredictionRollup.hour)).where(col(PredictionRollup.stale).is_(True))
    ).scalar()
    if earliest_stale is not None:
        limit = min(limit, as_utc(earliest_stale))
    return limit


def delete_prediction_log_batch(*, db_session: Session, before: datetime, limit: int = RETENTION_BATCH_ROWS) -> int:
    """Deletes up to `limit` prediction-log rows logged before `before`, oldest first."""
    ids = list(
        db_session.execute(
            select(PredictionLog.id).where(col(PredictionLog.at) < before).order_by(col(PredictionLog.id)).limit(limit)
        ).scalars()
    )
    if ids:
        db_session.execute(delete(PredictionLog).where(col(PredictionLog.id).in_(ids)))
    return len(ids)


# ------------------------------------------------------------------ last runs

RUNS_KEY = "strata:retention:runs"


@dataclass
class RetentionRun:
    """One retention job's last sweep: when it ended and what it removed, by kind."""

    job: str
    ran_at: datetime
    seconds: float
    removed: dict[str, int] = field(default_factory=dict)


async def record_run(job: str, *, started: datetime, removed: dict[str, int]) -> None:
    """Keeps `job`'s last sweep in Redis, where every web process reads it. A failure to
    record never fails the sweep, whose deletions are done."""
    ended = utcnow()
    entry = {"ran_at": ended.isoformat(), "seconds": (ended - started).total_seconds(), "removed": removed}
    redis = get_async_redis()
    try:
        await redis.hset(RUNS_KEY, job, json.dumps(entry))
    except Exception:  # noqa: BLE001 - Redis down: the page shows no last run for it
        log.warning("retention.record_failed", job=job, exc_info=True)
    finally:
        await redis.aclose()


async def last_runs() -> list[RetentionRun]:
    redis = get_async_redis()
    try:
        entries = await redis.hgetall(RUNS_KEY)
    finally:
        await redis.aclose()
    runs = []
    for job, raw in sorted(entries.items()):
        entry = json.loads(raw)
        runs.append(RetentionRun(job, datetime.fromisoformat(entry["ran_at"]), entry["seconds"], entry["removed"]))
    return runs
