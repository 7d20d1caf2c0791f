"""Runs one Job row inside the arq worker: status, progress, cancellation, retries,
the heartbeat that lets a surviving worker rescue jobs of a dead one, and the priority
the worker runs at."""

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from arq import Retry
from redis.exceptions import RedisError

from app.core.db import run_in_session
from app.core.settings import get_settings
from app.core.time import utcnow
from jobs import service
from jobs.metrics import JOB_RUN_DURATION, JOB_RUNS
from jobs.registry import JobContext, JobFailure, get_spec
from jobs.tables import JobStatus

log = structlog.get_logger("strata.jobs")

PROGRESS_WRITE_INTERVAL_SECONDS = 0.25
ARQ_KEY_PREFIXES = ("arq:job:", "arq:in-progress:", "arq:retry:")
ARQ_QUEUE = "arq:queue"


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def yield_to_the_web(niceness: int) -> None:
    """Lowers every thread of this process to `niceness`; threads and processes started later
    inherit it, and a higher niceness already set is kept. On the cores a worker shares with a
    web process, a job at the same priority takes half of them from an answer, whose decode
    steps then wait on their own threads (benchmarks/contention.py)."""
    tasks = Path("/proc/self/task")
    # Linux gives each thread its own niceness; elsewhere 0 names the whole process.
    threads = [int(task.name) for task in tasks.iterdir()] if tasks.is_dir() else [0]
    for thread in threads:
        with contextlib.suppress(ProcessLookupError):  # the thread has ended since
            if niceness > os.getpriority(os.PRIO_PROCESS, thread):
                os.setpriority(os.PRIO_PROCESS, thread, niceness)


def _progress_reporter(job_id: str):
    last_write = 0.0

    async def report(fraction: float, message: str = "") -> None:
        nonlocal last_write
        now = time.monotonic()
        if fraction < 1.0 and now - last_write < PROGRESS_WRITE_INTERVAL_SECONDS:
            return
        last_write = now
        await run_in_session(service.record_progress, job_id=job_id, fraction=fraction, message=message)

    return report


async def execute_job(ctx: dict[str, Any], job_id: str) -> None:
    settings = get_settings()
    attempt = ctx["job_try"]
    structlog.contextvars.bind_contextvars(job_id=job_id)
    try:
        job = await run_in_session(service.start_attempt, job_id=job_id, worker_id=ctx["worker_id"], attempt=attempt)
        if job is None:
            log.info("job.skipped", reason="finished, cancelled or unknown")
            return
        structlog.contextvars.bind_contextvars(job_kind=job.kind, user_id=job.created_by)
        run_started = time.perf_counter()

        async def finish(status: JobStatus, message: str, **outcome: Any) -> None:
            # Counted first, so that whoever sees the job end finds the run in /metrics.
            JOB_RUNS.labels(job.kind, status.value).inc()
            JOB_RUN_DURATION.labels(job.kind).observe(time.perf_counter() - run_started)
            await run_in_session(service.finish_attempt, job_id=job_id, status=status, message=message, **outcome)

        spec = get_spec(job.kind)
        if spec is None:
            await finish(JobStatus.failed, "Failed", error=f"No worker code for job kind {job.kind!r}.")
            return
        log.info("job.started", attempt=attempt)
        context = JobContext(job_id=job_id, params=job.params, attempt=attempt, report=_progress_reporter(job_id))
        try:
            result = await asyncio.wait_for(spec.run(context), timeout=settings.job_timeout_seconds)
        except JobFailure as exc:
            await finish(JobStatus.failed, "Failed", error=str(exc), result=exc.result)
        except service.JobCancelled:
            await finish(JobStatus.cancelled, "Cancelled")
        except asyncio.CancelledError:
            # The worker is shutting down; arq runs the job again on the next worker.
            await finish(JobStatus.queued, "Worker stopped; will run again")
            raise
        except TimeoutError:
            await finish(JobStatus.failed, "Timed out", error=f"Took longer than {settings.job_timeout_seconds} s.")
        except (RedisError, ConnectionError) as exc:
            if attempt < job.max_attempts:
                await finish(JobStatus.queued, f"Retrying after a connection error: {exc}")
                raise Retry(defer=2 * attempt) from exc
            await finish(JobStatus.failed, "Failed", error=_describe(exc))
        except Exception as exc:
            log.exception("job.failed")
            await finish(JobStatus.failed, "Failed", error=_describe(exc))
        else:
            await finish(JobStatus.succeeded, "Done", result=result)
            log.info("job.succeeded")
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "job_kind", "user_id")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def heartbeat_forever(ctx: dict[str, Any]) -> None:
    """Announces this worker and rescues jobs whose worker stopped announcing itself."""
    settings = get_settings()
    redis = ctx["redis"]
    interval = settings.worker_heartbeat_seconds
    while True:
        try:
            await redis.set(
                service.WORKER_HEARTBEAT_PREFIX + ctx["worker_id"],
                json.dumps({"id": ctx["worker_id"], "pid": os.getpid(), "last_beat": utcnow().isoformat()}),
                ex=max(3, int(interval * 3)),
            )
            await rescue_orphans(redis)
        except Exception:
            log.exception("worker.heartbeat_failed")
        await asyncio.sleep(interval)


async def live_worker_ids(redis) -> set[str]:
    ids = set()
    async for key in redis.scan_iter(match=service.WORKER_HEARTBEAT_PREFIX + "*"):
        key = key.decode() if isinstance(key, bytes) else key
        ids.add(key.removeprefix(service.WORKER_HEARTBEAT_PREFIX))
    return ids


async def rescue_orphans(redis) -> None:
    orphans = await run_in_session(service.orphaned_jobs, live_worker_ids=await live_worker_ids(redis))
    for job in orphans:
        will_retry = await run_in_session(_requeue_or_fail, job_id=job.id)
        if will_retry:
            # arq keeps the job queued but blocked by the dead worker's in-progress key.
            await redis.delete(f"arq:in-progress:{job.id}")
            log.warning("job.rescued", job_id=job.id, dead_worker=job.worker_id)
        else:
            await redis.zrem(ARQ_QUEUE, job.id)
            await redis.delete(*(prefix + job.id for prefix in ARQ_KEY_PREFIXES))
            log.warning("job.failed_worker_died", job_id=job.id, dead_worker=job.worker_id)


def _requeue_or_fail(*, db_session, job_id: str) -> bool:
    job = service.get_job(db_session=db_session, job_id=job_id)
    if job.status != JobStatus.running.value:
        return job.status == JobStatus.queued.value
    return service.requeue_or_fail_orphan(db_session=db_session, job=job)
