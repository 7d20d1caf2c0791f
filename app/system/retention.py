"""Retention of what piles up while Strata runs: finished job rows, prediction-log rows and
temporary files. The scheduled sweep (app/system/jobs.py) calls these; each deletion is its own
short transaction of at most RETENTION_BATCH_ROWS rows, so a large first sweep neither holds a
long lock nor blocks the writers of new rows.

Every retention job (this sweep, the audit log's and the usage log's) records when it last ran
and what it removed (`record_run`), for the System page's Storage section."""

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import delete, func, or_, select
from sqlmodel import Session, col

from app.batch.tables import BatchRun
from app.core.clients import get_async_redis
from app.core.settings import Settings, get_settings
from app.core.storage import KEY_AREAS
from app.core.storage import TEMP_PREFIX as STORAGE_TEMP_PREFIX
from app.core.time import utcnow
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

# Uploads are staged here before they become a document or a dataset version (app/core/uploads.py)
# and Reflex keeps its uploads in uploaded_files: a file older than the retention period in any
# of them is one whose request died before it was moved or discarded.
STAGING_DIRS = ("uploaded_files", "knowledge/incoming", "datasets/incoming")
# Partial writes (`.<name>.<uuid>.part`, renamed into place when complete) that a killed
# process left behind.
PARTIAL_WRITE_DIRS = ("datasets/converted", "predict")
PARTIAL_WRITE_SUFFIX = ".part"
# A batch job's work folder, <data dir>/batch/<job id> (app/batch/running.py), is removed once
# the job has an outcome; one whose job is finished or gone was left by a worker that died.
BATCH_WORK_DIR = "batch"


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
    limit = min(cutoff, _aware(progress.rolled_until) - rerolled)
    earliest_stale = db_session.execute(
        select(func.min(PredictionRollup.hour)).where(col(PredictionRollup.stale).is_(True))
    ).scalar()
    if earliest_stale is not None:
        limit = min(limit, _aware(earliest_stale))
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


def _aware(moment: datetime) -> datetime:
    """SQLite gives datetimes back without their zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# ------------------------------------------------------------------ temporary files


@dataclass
class Removed:
    files: int = 0
    bytes: int = 0

    def add(self, path: Path) -> None:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return  # removed meanwhile by the request or job that owned it
        self.files += 1
        self.bytes += size


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None  # removed meanwhile


def _older(path: Path, cutoff: float) -> bool:
    moment = _mtime(path)
    return moment is not None and moment < cutoff


def _remove_empty_dirs(root: Path) -> None:
    for directory, _subdirs, _files in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        if Path(directory) != root:
            try:
                os.rmdir(directory)
            except OSError:
                pass  # not empty


def _prune_staging(settings: Settings, cutoff: float, removed: Removed) -> None:
    for name in STAGING_DIRS:
        root = settings.resolved_data_dir / name
        for path in [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]:
            if _older(path, cutoff):
                removed.add(path)
        if root.is_dir():
            _remove_empty_dirs(root)


def _prune_partial_writes(settings: Settings, cutoff: float, removed: Removed) -> None:
    for name in PARTIAL_WRITE_DIRS:
        for path in (settings.resolved_data_dir / name).rglob(f"*{PARTIAL_WRITE_SUFFIX}"):
            if path.is_file() and _older(path, cutoff):
                removed.add(path)


def _prune_storage_partial_writes(settings: Settings, cutoff: float, removed: Removed) -> None:
    """Half-written saves of the files store (app/core/storage.py) whose process was killed; an
    S3 store never shows an upload before it is complete."""
    if settings.storage_url:
        return
    for area in KEY_AREAS:
        for path in (settings.resolved_files_dir / area).rglob(f"{STORAGE_TEMP_PREFIX}*"):
            if path.is_file() and _older(path, cutoff):
                removed.add(path)


def _newest_mtime(folder: Path) -> float:
    """Of the files in it (a folder's own time changes when a file is removed); an empty
    folder's own."""
    times = [moment for p in folder.rglob("*") if p.is_file() and (moment := _mtime(p)) is not None]
    return max(times) if times else (_mtime(folder) or 0.0)


def abandoned_batch_dirs(*, db_session: Session, settings: Settings, cutoff: float) -> list[Path]:
    """Batch work folders untouched since `cutoff` whose job is finished or gone."""
    root = settings.resolved_data_dir / BATCH_WORK_DIR
    folders = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()] if root.is_dir() else []
    if not folders:
        return []
    names = [folder.name for folder in folders]
    alive = set(
        db_session.execute(select(Job.id).where(col(Job.id).in_(names), col(Job.status).not_in(FINISHED))).scalars()
    )
    return [f for f in folders if f.name not in alive and _newest_mtime(f) < cutoff]


def _remove_batch_dir(folder: Path, removed: Removed) -> None:
    for path in [p for p in folder.rglob("*") if p.is_file()]:
        removed.add(path)
    shutil.rmtree(folder, ignore_errors=True)


def prune_temp_files(*, db_session: Session, settings: Settings, cutoff: datetime) -> Removed:
    """Removes the temporary files last written before `cutoff`: staged uploads, partial writes
    (also the file store's) and abandoned batch work folders. Files in use are newer, and a batch job that is queued or
    running keeps its folder however old."""
    moment = cutoff.timestamp()
    removed = Removed()
    _prune_staging(settings, moment, removed)
    _prune_partial_writes(settings, moment, removed)
    _prune_storage_partial_writes(settings, moment, removed)
    for folder in abandoned_batch_dirs(db_session=db_session, settings=settings, cutoff=moment):
        _remove_batch_dir(folder, removed)
    return removed


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
