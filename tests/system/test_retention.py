"""Retention: the hourly sweep removes exactly the finished job rows, prediction-log rows and
temporary files past their retention, and keeps running, queued, recent and still referenced
ones, on SQLite and PostgreSQL; the Monitoring figures of pruned hours stay."""

import io
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from app.batch.running import work_dir
from app.batch.tables import BatchRun
from app.core.db import session_scope
from app.core.storage import get_storage
from app.core.time import as_utc, utcnow
from app.core.uploads import incoming_dir
from app.knowledge.tables import Document, DocumentStatus, KnowledgeBase
from app.monitoring import rollups
from app.monitoring.rollup_tables import PredictionRollup
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel
from app.schedules.tables import Schedule
from app.system import retention, retention_jobs
from app.training.tables import TrainingRun
from jobs.tables import Job, JobStatus
from jobs.worker import worker_settings
from tests.conftest import reset_caches

pytestmark = pytest.mark.usefixtures("redis_url")

DAY = timedelta(days=1)


def _job(job_id: str, status: JobStatus, age: timedelta) -> Job:
    at = utcnow() - age
    finished = at if status.finished else None
    return Job(id=job_id, kind="ingest_document", status=status.value, created_at=at, finished_at=finished)


def _add(*rows) -> None:
    with session_scope() as db_session:
        for row in rows:
            db_session.add(row)
            db_session.flush()


def _job_ids() -> set[str]:
    with session_scope() as db_session:
        return set(db_session.execute(select(Job.id)).scalars())


async def test_old_finished_jobs_go_and_running_queued_recent_and_referenced_ones_stay(db, settings):
    assert settings.job_retention_days == 90
    old, recent = 120 * DAY, 10 * DAY
    _add(
        _job("old-succeeded", JobStatus.succeeded, old),
        _job("old-failed", JobStatus.failed, old),
        _job("old-cancelled", JobStatus.cancelled, old),
        _job("recent-succeeded", JobStatus.succeeded, recent),
        _job("old-running", JobStatus.running, old),
        _job("old-queued", JobStatus.queued, old),
        # Finished long ago, but a training run, a batch run, a schedule and a document still read them.
        _job("trained", JobStatus.succeeded, old),
        _job("batched", JobStatus.failed, old),
        _job("scheduled", JobStatus.succeeded, old),
        _job("ingesting", JobStatus.failed, old),
        _job("ingested", JobStatus.succeeded, old),
    )
    _add(
        TrainingRun(job_id="trained", text_column="t", label_column="l", model_name="m", holdout_fraction=0.2, seed=1),
        BatchRun(
            job_id="batched",
            dataset_name="d",
            dataset_version_number=1,
            text_column="t",
            model_name="m",
            model_version_number=1,
            chunk_size=10,
            rows_total=10,
        ),
        Schedule(name="nightly", action="batch", cron="0 2 * * *", last_job_id="scheduled"),
        KnowledgeBase(id=1, name="Notes", collection="kb-notes"),
    )
    common = {"knowledge_base_id": 1, "size_bytes": 1, "stored_path": "knowledge/1/x"}
    _add(
        # Its job failed, and the document is not settled yet: the failure reason comes from the job.
        Document(filename="a.txt", sha256="a", status=DocumentStatus.ingesting.value, job_id="ingesting", **common),
        Document(filename="b.txt", sha256="b", status=DocumentStatus.ready.value, job_id="ingested", **common),
    )

    removed = await retention_jobs.sweep()

    assert removed["job rows"] == 4
    assert _job_ids() == {
        "recent-succeeded",
        "old-running",
        "old-queued",
        "trained",
        "batched",
        "scheduled",
        "ingesting",
    }
    with session_scope() as db_session:
        assert db_session.execute(select(Schedule.last_job_id)).scalar_one() == "scheduled"
        assert db_session.execute(select(func.count()).select_from(TrainingRun)).scalar_one() == 1


async def test_zero_keeps_job_rows_forever(db, settings, monkeypatch):
    monkeypatch.setattr(settings, "job_retention_days", 0)
    _add(_job("ancient", JobStatus.succeeded, 4000 * DAY))
    assert (await retention_jobs.sweep())["job rows"] == 0
    assert _job_ids() == {"ancient"}


async def test_deleting_in_batches_reaches_every_old_row(db):
    _add(*[_job(f"old-{n}", JobStatus.succeeded, 100 * DAY) for n in range(7)], _job("new", JobStatus.failed, DAY))
    batches = []
    cutoff = utcnow() - 90 * DAY
    while True:
        with session_scope() as db_session:
            batches.append(retention.delete_finished_jobs_batch(db_session=db_session, cutoff=cutoff, limit=3))
        if not batches[-1]:
            break
    assert batches == [3, 3, 1, 0] and _job_ids() == {"new"}


# ------------------------------------------------------------------ prediction log


def _version() -> int:
    with session_scope() as db_session:
        model = RegisteredModel(name="news", kind="classifier")
        db_session.add(model)
        db_session.flush()
        version = ModelVersion(
            model_id=model.id, number=1, artifact="/x", sha256="0" * 64, size_bytes=1, source="test", created_by="t"
        )
        db_session.add(version)
        db_session.flush()
        return version.id


def _log(version_id: int, ages: list[timedelta]) -> None:
    now = utcnow()
    rows = [
        {"at": now - age, "version_id": version_id, "caller": "t", "latency_ms": 3.0, "label": "x", "input_sha256": "h"}
        for age in ages
    ]
    with session_scope() as db_session:
        db_session.execute(insert(PredictionLog), rows)


def _log_ages() -> list[float]:
    now = utcnow()
    with session_scope() as db_session:
        ats = db_session.execute(select(PredictionLog.at)).scalars()
        return sorted(round((now - as_utc(at)) / DAY) for at in ats)


def _rolled_up_predictions() -> int:
    with session_scope() as db_session:
        return db_session.execute(select(func.sum(PredictionRollup.predictions))).scalar_one()


async def test_old_prediction_log_rows_go_once_rolled_up_and_their_figures_stay(db, settings, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_retention_days", 30)
    version_id = _version()
    _log(version_id, [45 * DAY, 40 * DAY, 31 * DAY, 29 * DAY, 2 * DAY, timedelta(0)])

    # Nothing is rolled up yet: the rows are the Monitoring page's only source, so they stay.
    assert (await retention_jobs.sweep())["prediction log rows"] == 0
    assert len(_log_ages()) == 6

    with session_scope() as db_session:
        rollups.roll_up(db_session=db_session)
    rolled = _rolled_up_predictions()
    assert rolled == 5  # all but the row of the current hour

    assert (await retention_jobs.sweep())["prediction log rows"] == 3
    assert _log_ages() == [0, 2, 29]
    # The hourly figures of the pruned rows are kept, also after the next rollup.
    with session_scope() as db_session:
        rollups.roll_up(db_session=db_session)
    assert _rolled_up_predictions() == rolled


async def test_a_stale_rolled_up_hour_keeps_its_rows_until_rolled_again(db, settings, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_retention_days", 30)
    version_id = _version()
    _log(version_id, [50 * DAY, 40 * DAY])
    with session_scope() as db_session:
        rollups.roll_up(db_session=db_session)
        hour = rollups.floor_hour(utcnow() - 50 * DAY)
        stale = db_session.execute(select(PredictionRollup).where(PredictionRollup.hour == hour)).scalar_one()
        stale.stale = True
    assert (await retention_jobs.sweep())["prediction log rows"] == 0
    with session_scope() as db_session:
        rollups.roll_up(db_session=db_session)
    assert (await retention_jobs.sweep())["prediction log rows"] == 2


# ------------------------------------------------------------------ temporary files


def _file(path: Path, age: timedelta, size: int = 100) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    moment = (utcnow() - age).timestamp()
    os.utime(path, (moment, moment))
    return path


@pytest.fixture
def scratch(settings):
    """Removes the files a test left in the data dir's scratch and store areas (conftest's db
    fixture removes only knowledge and datasets)."""
    yield
    for name in ("cache", "uploaded_files", "batch", "predict"):
        shutil.rmtree(settings.resolved_data_dir / name, ignore_errors=True)


def _key(key: str, size: int = 100) -> str:
    get_storage().save(key, io.BytesIO(b"k" * size))
    return key


async def test_old_temporary_files_go_and_stored_recent_and_in_use_ones_stay(db, settings, scratch):
    assert settings.temp_file_retention_hours == 24
    data = settings.resolved_data_dir
    old, recent = timedelta(hours=30), timedelta(hours=2)
    _add(
        _job("failed-job", JobStatus.failed, old),
        _job("queued-job", JobStatus.queued, old),
        _job("done-job", JobStatus.succeeded, recent),
    )
    gone = [
        _file(incoming_dir(settings, "knowledge") / "a1", old),
        _file(incoming_dir(settings, "datasets") / "b1", old),
        _file(incoming_dir(settings, "converting") / "c1.parquet", old),
        _file(data / "uploaded_files" / "some" / "upload.csv", old),
        _file(data / "cache" / "storage" / "spool" / ".strata-tmp-99", old),
        # A save of the files store that its process never finished.
        _file(settings.resolved_files_dir / "datasets" / "objects" / ".strata-tmp-0123", old),
        # The work of a batch job that failed long ago and of one whose job row is gone.
        _file(work_dir(settings, "failed-job") / "texts.parquet", recent),
        _file(work_dir(settings, "vanished-job") / "chunks" / "0.parquet", old),
    ]
    gone_keys = [_key("batch/failed-job/chunks/0.parquet"), _key("batch/vanished-job/chunks/1.parquet")]
    kept = [
        _file(incoming_dir(settings, "knowledge") / "a2", recent),
        _file(data / "uploaded_files" / "fresh.csv", recent),
        _file(settings.resolved_files_dir / "knowledge" / "2" / ".strata-tmp-4567", recent),
        # A queued batch job keeps its work, untouched for long as it may be; so does one finished lately.
        _file(work_dir(settings, "queued-job") / "texts.parquet", old),
        _file(work_dir(settings, "done-job") / "texts.parquet", old),
    ]
    kept_keys = [
        _key("batch/queued-job/chunks/0.parquet"),
        _key("batch/done-job/chunks/0.parquet"),
        # Stored content, however old.
        _key("datasets/objects/c0ffee"),
        _key("knowledge/1/doc.pdf"),
        _key("predict/news/v3.json"),
    ]

    removed = await retention_jobs.sweep()

    assert [path for path in gone if path.exists()] == []
    assert [path for path in kept if not path.exists()] == []
    stored = {key for key, _size in get_storage().iter_keys()}
    assert stored.isdisjoint(gone_keys) and set(kept_keys) <= stored
    assert (removed["temporary files"], removed["temporary bytes"]) == (10, 1000)
    assert not work_dir(settings, "failed-job").exists() and not work_dir(settings, "vanished-job").exists()


@pytest.mark.one_backend
async def test_a_dead_batch_jobs_chunks_in_an_s3_bucket_go(db, s3_server, monkeypatch, scratch):
    bucket = s3_server.create_bucket("retention-batch")
    for name, value in s3_server.environment(bucket).items():
        monkeypatch.setenv(name, value)
    reset_caches()
    try:
        _add(_job("failed-job", JobStatus.failed, 2 * DAY), _job("running-job", JobStatus.running, 2 * DAY))
        _key("batch/failed-job/chunks/0.parquet", 300)
        _key("batch/failed-job/chunks/1.parquet", 200)
        _key("batch/running-job/chunks/0.parquet")
        removed = await retention_jobs.sweep()
        stored = [key for key, _size in get_storage().iter_keys()]
    finally:
        monkeypatch.undo()
        reset_caches()
    assert (removed["temporary files"], removed["temporary bytes"]) == (2, 500)
    assert stored == ["batch/running-job/chunks/0.parquet"]


# ------------------------------------------------------------------ the schedule


async def test_the_worker_runs_the_sweep_hourly_once_and_records_what_it_removed(db):
    crons = {job.name: job for job in worker_settings()["cron_jobs"]}
    sweep = crons["system.retention"]
    assert sweep.unique and sweep.minute == retention_jobs.RETENTION_SWEEP_MINUTE and sweep.hour is None
    assert sweep.timeout_s < 3600  # over before the next hour's sweep starts
    _add(_job("old", JobStatus.succeeded, 100 * DAY))
    await sweep.coroutine({})
    await crons["usage.retention"].coroutine({})
    await crons["audit.retention"].coroutine({})
    runs = {run.job: run for run in await retention.last_runs()}
    assert set(runs) == {"system.retention", "usage.retention", "audit.retention"}
    assert runs["system.retention"].removed["job rows"] == 1
    assert runs["usage.retention"].removed == {"usage events": 0}
    assert (utcnow() - runs["system.retention"].ran_at) < timedelta(minutes=5)
    assert _job_ids() == set()


def test_the_prediction_log_is_kept_at_least_as_long_as_drift_reads_it():
    from app.core.settings import Settings

    with pytest.raises(ValueError, match="at least STRATA_DRIFT_WINDOW_HOURS"):
        Settings(prediction_log_retention_days=1, drift_window_hours=48)
    assert Settings(prediction_log_retention_days=2, drift_window_hours=48).prediction_log_retention_days == 2
    assert Settings(prediction_log_retention_days=0, drift_window_hours=9000).prediction_log_retention_days == 0
