"""Composition root of the worker: `strata worker` runs arq with these settings."""

import asyncio
import contextlib
import os
from typing import Any

import structlog
from arq import cron

import app.job_kinds  # noqa: F401 - registers every job kind
from app.alerts.jobs import CHECK_TIMEOUT_SECONDS, alerts_check
from app.audit.jobs import RETENTION_HOUR, RETENTION_TIMEOUT_SECONDS, audit_retention
from app.core.clients import arq_redis_settings
from app.core.logging import configure_logging
from app.core.metrics import forget_live_values, serve_process_metrics
from app.core.request_address import WORKER_ADDRESS, set_request_address
from app.core.settings import get_settings
from app.monitoring.jobs import DRIFT_TICK_TIMEOUT_SECONDS, drift_tick
from app.monitoring.rollup_jobs import ROLLUP_TIMEOUT_SECONDS, rollup_tick
from app.schedules.jobs import TICK_TIMEOUT_SECONDS, schedules_tick
from app.system.retention_jobs import (
    RETENTION_SWEEP_MINUTE,
    RETENTION_SWEEP_NAME,
    RETENTION_SWEEP_TIMEOUT_SECONDS,
    retention_sweep,
)
from app.usage.jobs import (
    USAGE_RETENTION_HOUR,
    USAGE_RETENTION_MINUTE,
    USAGE_RETENTION_TIMEOUT_SECONDS,
    usage_retention,
)
from app.webhooks.jobs import SWEEP_EVERY_SECONDS, SWEEP_TIMEOUT_SECONDS, webhooks_sweep
from jobs.runtime import execute_job, heartbeat_forever, new_worker_id, yield_to_the_web

log = structlog.get_logger("strata.worker")


async def on_startup(ctx: dict[str, Any]) -> None:
    ctx["worker_id"] = new_worker_id()
    structlog.contextvars.bind_contextvars(worker_id=ctx["worker_id"])
    # The address of the audit entries that jobs write (a schedule's runs, the retention sweep).
    set_request_address(WORKER_ADDRESS)
    ctx["heartbeat"] = asyncio.create_task(heartbeat_forever(ctx))
    settings = get_settings()
    if settings.worker_metrics_port:
        serving = serve_process_metrics(host=settings.worker_metrics_host, port=settings.worker_metrics_port)
        log.info("worker.metrics", port=settings.worker_metrics_port, served_by_this_worker=serving)
    log.info("worker.started", niceness=os.getpriority(os.PRIO_PROCESS, 0))


async def on_shutdown(ctx: dict[str, Any]) -> None:
    ctx["heartbeat"].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ctx["heartbeat"]
    forget_live_values()
    log.info("worker.stopped")


def worker_settings() -> dict[str, Any]:
    settings = get_settings()
    configure_logging(settings.log_level)
    return {
        "functions": [execute_job],
        # Fires the due schedules every minute and when the worker starts (app/schedules/jobs.py);
        # unique: one arq job id per minute for all workers, so one of them runs each tick.
        "cron_jobs": [
            cron(
                schedules_tick,
                name="schedules.tick",
                second=0,
                run_at_startup=True,
                unique=True,
                timeout=TICK_TIMEOUT_SECONDS,
            ),
            # Accuracy and error-rate alerts every STRATA_ALERT_CHECK_MINUTES (app/alerts/jobs.py).
            cron(
                alerts_check,
                name="alerts.check",
                minute=set(range(0, 60, settings.alert_check_minutes)),
                second=30,
                unique=True,
                timeout=CHECK_TIMEOUT_SECONDS,
            ),
            # Rolls up the prediction log's complete hours for the Monitoring page every
            # STRATA_MONITORING_ROLLUP_MINUTES, and at start (app/monitoring/rollups.py).
            cron(
                rollup_tick,
                name="monitoring.rollup",
                minute=set(range(0, 60, settings.monitoring_rollup_minutes)),
                second=45,
                run_at_startup=True,
                unique=True,
                timeout=ROLLUP_TIMEOUT_SECONDS,
            ),
            # Computes drift for production and canary versions whose last result is older than
            # STRATA_DRIFT_INTERVAL_MINUTES (app/monitoring/jobs.py); a Redis lock keeps ticks apart.
            cron(
                drift_tick,
                name="monitoring.drift",
                second=30,
                run_at_startup=True,
                unique=True,
                timeout=DRIFT_TICK_TIMEOUT_SECONDS,
            ),
            # Sends the due webhook deliveries every few seconds and at start (app/webhooks/jobs.py).
            cron(
                webhooks_sweep,
                name="webhooks.sweep",
                second=set(range(0, 60, SWEEP_EVERY_SECONDS)),
                run_at_startup=True,
                unique=True,
                timeout=SWEEP_TIMEOUT_SECONDS,
            ),
            # Deletes audit entries past STRATA_AUDIT_RETENTION_DAYS once a day (app/audit/jobs.py).
            cron(
                audit_retention,
                name="audit.retention",
                hour=RETENTION_HOUR,
                minute=0,
                second=0,
                unique=True,
                timeout=RETENTION_TIMEOUT_SECONDS,
            ),
            # Deletes usage events past STRATA_USAGE_RETENTION_DAYS once a day (app/usage/jobs.py).
            cron(
                usage_retention,
                name="usage.retention",
                hour=USAGE_RETENTION_HOUR,
                minute=USAGE_RETENTION_MINUTE,
                second=0,
                unique=True,
                timeout=USAGE_RETENTION_TIMEOUT_SECONDS,
            ),
            # Deletes finished job rows, prediction-log rows and temporary files past their
            # retention every hour (app/system/retention_jobs.py).
            cron(
                retention_sweep,
                name=RETENTION_SWEEP_NAME,
                minute=RETENTION_SWEEP_MINUTE,
                second=0,
                unique=True,
                timeout=RETENTION_SWEEP_TIMEOUT_SECONDS,
            ),
        ],
        "redis_settings": arq_redis_settings(),
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
        # Our own attempt accounting decides first; arq's limit is only a backstop.
        "max_tries": settings.job_max_tries + 1,
        "job_timeout": settings.job_timeout_seconds + 60,
        "keep_result": 60,
        "max_jobs": 4,
        "poll_delay": 0.5,
        "handle_signals": True,
    }


def run_worker() -> None:
    from arq.worker import run_worker as arq_run_worker

    yield_to_the_web(get_settings().worker_niceness)
    arq_run_worker(type("WorkerSettings", (), worker_settings()))
