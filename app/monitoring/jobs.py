"""The drift check: jobs/worker.py registers drift_tick as an arq cron job every minute (unique:
one worker runs each minute's tick); the tick computes drift for each production or canary version
whose last stored result is older than STRATA_DRIFT_INTERVAL_MINUTES (app/monitoring/drift.py),
so any interval works and one missed while no worker ran is made up at once.

A trained version's first computation builds its reference (a model call over up to 1,000
texts), which can outlast a minute: a Redis lock keeps the next minute's tick from computing the
same versions meanwhile."""

from typing import Any

import structlog

from app.core.clients import get_async_redis
from app.core.db import run_in_session
from app.core.time import utcnow
from app.monitoring import drift

DRIFT_TICK_TIMEOUT_SECONDS = 900
TICK_LOCK_KEY = "strata:drift:tick"

log = structlog.get_logger("strata.drift")


async def compute_due_drift() -> list[drift.DriftResult]:
    """Computes drift for every due version, each in its own transaction; a failure of one is
    logged and the others go on. Returns the results stored."""
    due = await run_in_session(drift.due_versions, now=utcnow())
    stored = []
    for model_name, version_number in due:
        try:
            result = await run_in_session(drift.scheduled_drift, model_name=model_name, version_number=version_number)
        except Exception:  # noqa: BLE001 - one model's failure must not stop the others' checks
            log.exception("drift.failed", model=model_name, version=version_number)
            continue
        if result is not None and result.id is not None:
            stored.append(result)
            log.info("drift.computed", model=model_name, version=version_number, status=result.status)
    return stored


async def drift_tick(_ctx: dict[str, Any]) -> None:
    redis = get_async_redis()
    try:
        if not await redis.set(TICK_LOCK_KEY, "1", nx=True, ex=DRIFT_TICK_TIMEOUT_SECONDS):
            return  # the previous tick is still computing
        try:
            await compute_due_drift()
        finally:
            await redis.delete(TICK_LOCK_KEY)
    finally:
        await redis.aclose()
