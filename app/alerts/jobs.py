"""The worker's alert check: jobs/worker.py registers it as an arq cron job every
STRATA_ALERT_CHECK_MINUTES (unique: one worker per tick). Checking is app/alerts/checks.py."""

from typing import Any

from app.alerts.checks import check_all_models
from app.core.db import run_in_session

CHECK_TIMEOUT_SECONDS = 240


async def alerts_check(_ctx: dict[str, Any]) -> None:
    await run_in_session(check_all_models)
