"""The audit log's retention: jobs/worker.py runs `audit_retention` daily as a unique arq cron
job. It deletes entries older than STRATA_AUDIT_RETENTION_DAYS (0 keeps them forever) in
batches, each its own short transaction, so a large first sweep neither holds a long lock nor
blocks the writers of new entries; then it records one entry saying how many it removed."""

from datetime import timedelta
from typing import Any

import structlog

from app.audit.service import delete_batch_older_than, record
from app.core.db import run_in_session
from app.core.settings import get_settings
from app.core.time import utcnow
from app.system.retention import record_run

log = structlog.get_logger("strata.audit")

# Once a day, at a quiet hour (UTC); a sweep that runs longer than this gives up and the next
# day's continues where it stopped.
RETENTION_HOUR = 3
RETENTION_TIMEOUT_SECONDS = 3600


async def prune_audit_log() -> int:
    """Deletes the entries past retention; returns how many."""
    days = get_settings().audit_retention_days
    if days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=days)
    deleted = 0
    while removed := await run_in_session(delete_batch_older_than, cutoff=cutoff):
        deleted += removed
    if deleted:
        await run_in_session(
            record,
            actor=None,
            action="audit_log.pruned",
            target="audit log",
            detail=f"{deleted} entries older than {days} days ({cutoff.date().isoformat()}) removed",
        )
    log.info("audit.pruned", deleted=deleted, retention_days=days)
    return deleted


async def audit_retention(_ctx: dict[str, Any]) -> None:
    started = utcnow()
    deleted = await prune_audit_log()
    await record_run("audit.retention", started=started, removed={"audit entries": deleted})
