"""The usage log's retention: jobs/worker.py runs `usage_retention` daily as an arq cron job
(unique: one worker runs each day's), deleting events older than STRATA_USAGE_RETENTION_DAYS."""

from typing import Any

import structlog

from app.core.db import run_in_session
from app.core.settings import get_settings
from app.core.time import utcnow
from app.system.retention import record_run
from app.usage.service import delete_old_usage

log = structlog.get_logger("strata.usage")

# Daily at 03:30 UTC, a quiet hour, apart from the audit log's retention.
USAGE_RETENTION_HOUR, USAGE_RETENTION_MINUTE = 3, 30
# A delete over the `at` index; a slow database gets most of an hour.
USAGE_RETENTION_TIMEOUT_SECONDS = 3000


async def usage_retention(_ctx: dict[str, Any]) -> int:
    started = utcnow()
    deleted = await run_in_session(delete_old_usage, retention_days=get_settings().usage_retention_days)
    await record_run("usage.retention", started=started, removed={"usage events": deleted})
    log.info("usage.retention", deleted=deleted)
    return deleted
