"""Schedules end to end: real `strata worker` processes with the schedules' arq cron tick, real
Valkey and database, and the real batch job a schedule starts."""

import asyncio
from datetime import datetime, timedelta

from arq import create_pool
from arq.worker import Worker
from sqlmodel import select

from app.batch.service import BATCH_SCORE
from app.batch.tables import BatchRun
from app.core.clients import arq_redis_settings, reset_loop_redis
from app.core.db import session_scope
from app.core.time import utcnow
from app.datasets.tables import DatasetVersion
from jobs.runtime import ARQ_QUEUE
from jobs.tables import Job, JobStatus
from jobs.worker import worker_settings
from tests.conftest import wait_until
from tests.schedules.conftest import create, jobs_of_kind, reread, reviews_csv, upload_version


def test_a_schedule_missed_while_no_worker_ran_fires_once_when_two_workers_start_and_scores_the_newest_version(
    workers, staff, classifier, settings, redis_url
):
    async def two_versions() -> int:
        await upload_version(staff, settings, reviews_csv())
        return await upload_version(staff, settings, reviews_csv(extra=" (newest)"))

    newest = asyncio.run(two_versions())
    reset_loop_redis()
    # Daily at a time 20 minutes ago, made the day before: its times yesterday and today passed
    # while no worker ran. (Daily, so that no new time comes while the test runs.)
    daily = utcnow() - timedelta(minutes=20)
    schedule = create(staff, cron=f"{daily.minute} {daily.hour} * * *", now=daily - timedelta(days=1, minutes=10))
    assert schedule.next_run_at < daily - timedelta(hours=23)

    # Both workers fire a tick as they start, at the same moment: one run starts.
    workers()
    workers()
    fired = wait_until(lambda: (found := reread(schedule.id)).last_job_id and found, 120, "the schedule to fire")
    assert fired.last_outcome == f"started job {fired.last_job_id}"
    # Once, and next tomorrow: not at today's time, missed too.
    assert fired.next_run_at == daily.replace(second=0, microsecond=0) + timedelta(days=1)

    def finished() -> Job | None:
        with session_scope() as db_session:
            job = db_session.get(Job, fired.last_job_id)
            return job if JobStatus(job.status).finished else None

    job = wait_until(finished, 300, "the scheduled batch job to finish")
    assert job.status == JobStatus.succeeded, job.error
    assert job.created_by == staff.id
    assert [found.id for found in jobs_of_kind(BATCH_SCORE)] == [job.id]
    with session_scope() as db_session:
        [batch] = db_session.exec(select(BatchRun)).all()
        result = db_session.get(DatasetVersion, batch.result_dataset_version_id)
    assert (batch.dataset_name, batch.dataset_version_number, batch.rows_total) == ("reviews", newest, 40)
    assert result is not None and result.row_count == 40
    assert {"prediction", "confidence", "model_version"} <= {column["name"] for column in result.columns}
    assert reread(schedule.id).last_outcome == f"started job {job.id}"


async def test_arq_queues_each_minutes_tick_once_however_many_workers_run(redis_url):
    """The worker's own cron settings in two arq workers on one Valkey: each heartbeat near the
    minute enqueues the tick, and `unique` gives both the same job id, so one tick is queued."""
    pool = await create_pool(arq_redis_settings())
    try:
        arq_workers = [
            Worker(functions=[], cron_jobs=worker_settings()["cron_jobs"], redis_pool=pool, handle_signals=False)
            for _ in range(2)
        ]
        started = datetime.now()  # arq's clock: the machine's local time
        for worker in arq_workers:
            await worker.run_cron(started, 0.5)  # the tick at start
        [minute] = {worker.cron_jobs[0].next_run for worker in arq_workers}
        assert (minute.second, minute > started) == (0, True)
        queued = set(await pool.zrange(ARQ_QUEUE, 0, -1))
        for worker in arq_workers:
            await worker.run_cron(minute - timedelta(seconds=0.5), 0.5)
        # The worker's other cron jobs (drift, alerts, webhooks, rollups...) may fall due too.
        new_jobs = {job_id.decode() for job_id in set(await pool.zrange(ARQ_QUEUE, 0, -1)) - queued}
        minute_ticks = [job_id for job_id in new_jobs if job_id.startswith("schedules.tick:")]
        assert len(minute_ticks) == 1
    finally:
        await pool.aclose()
