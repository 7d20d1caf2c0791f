"""The retention sweep: jobs/worker.py runs `retention_sweep` every hour as a unique arq cron job
(one worker runs each hour's). It deletes finished job rows older than STRATA_JOB_RETENTION_DAYS,
prediction-log rows older than STRATA_PREDICTION_LOG_RETENTION_DAYS and temporary files older
than STRATA_TEMP_FILE_RETENTION_HOURS (0 keeps each forever), in batches, each its own short
transaction, and records what it removed for the System page (app/system/retention.py)."""

from datetime import timedelta
from typing import Any

import structlog

from app.core.db import run_in_session
from app.core.settings import get_settings
from app.core.time import utcnow
from app.system import retention, temp_files

log = structlog.get_logger("strata.retention")

RETENTION_SWEEP_NAME = "system.retention"
# Hourly, at a minute no other cron job uses; temporary files are kept for hours, rows for days.
RETENTION_SWEEP_MINUTE = 17
# A first sweep over a large backlog that runs longer gives up; the next hour's continues.
RETENTION_SWEEP_TIMEOUT_SECONDS = 3000


async def _delete_in_batches(delete_batch, **kwargs: Any) -> int:
    deleted = 0
    while removed := await run_in_session(delete_batch, **kwargs):
        deleted += removed
    return deleted


async def prune_jobs() -> int:
    days = get_settings().job_retention_days
    if days <= 0:
        return 0
    return await _delete_in_batches(retention.delete_finished_jobs_batch, cutoff=utcnow() - timedelta(days=days))


async def prune_prediction_log() -> int:
    days = get_settings().prediction_log_retention_days
    if days <= 0:
        return 0
    before = await run_in_session(retention.prediction_log_cutoff, cutoff=utcnow() - timedelta(days=days))
    if before is None:
        return 0
    return await _delete_in_batches(retention.delete_prediction_log_batch, before=before)


async def prune_temp_files() -> temp_files.Removed:
    settings = get_settings()
    if settings.temp_file_retention_hours <= 0:
        return temp_files.Removed()
    cutoff = utcnow() - timedelta(hours=settings.temp_file_retention_hours)
    return await run_in_session(temp_files.prune_temp_files, settings=settings, cutoff=cutoff)


async def sweep() -> dict[str, int]:
    """One sweep; returns what it removed, as the System page shows it."""
    started = utcnow()
    files = await prune_temp_files()
    removed = {
        "job rows": await prune_jobs(),
        "prediction log rows": await prune_prediction_log(),
        "temporary files": files.files,
        "temporary bytes": files.bytes,
    }
    await retention.record_run(RETENTION_SWEEP_NAME, started=started, removed=removed)
    log.info("retention.swept", **{key.replace(" ", "_"): value for key, value in removed.items()})
    return removed


async def retention_sweep(_ctx: dict[str, Any]) -> None:
    await sweep()
