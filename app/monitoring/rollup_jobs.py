"""The worker's rollup of the prediction log: jobs/worker.py registers it as an arq cron job
every STRATA_MONITORING_ROLLUP_MINUTES (unique: one worker per tick). Rolling up is
app/monitoring/rollups.py."""

from typing import Any

from app.core.db import run_in_session
from app.monitoring.rollups import roll_up

# A first run over a large existing log rolls it a day per transaction; later runs take seconds.
ROLLUP_TIMEOUT_SECONDS = 600


async def rollup_tick(_ctx: dict[str, Any]) -> None:
    await run_in_session(roll_up)
