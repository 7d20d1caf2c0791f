"""The schedules' tick: jobs/worker.py registers it as an arq cron job that runs every minute
at second 0 (unique: one worker runs each minute's tick) and once when a worker starts, so that
runs missed while no worker ran happen at once. Firing is app/schedules/firing.py."""

from typing import Any

from app.schedules.firing import fire_due_schedules

# Firing only queues the runs it starts, so a tick is short; one that hangs (the database or
# Redis unreachable) gives up before the next minute's.
TICK_TIMEOUT_SECONDS = 55


async def schedules_tick(_ctx: dict[str, Any]) -> None:
    await fire_due_schedules()
