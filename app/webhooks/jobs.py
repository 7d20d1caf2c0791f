"""The worker's webhook sweep: jobs/worker.py registers it as an arq cron job every
SWEEP_EVERY_SECONDS (unique: one worker per tick) and at worker start, so deliveries due while
no worker ran go out at once. Sending is app/webhooks/deliveries.py."""

from typing import Any

from app.webhooks.deliveries import deliver_due

SWEEP_EVERY_SECONDS = 10
# A sweep's POSTs run together, each bounded by STRATA_WEBHOOK_TIMEOUT_SECONDS (at most 60).
SWEEP_TIMEOUT_SECONDS = 90


async def webhooks_sweep(_ctx: dict[str, Any]) -> None:
    await deliver_due()
