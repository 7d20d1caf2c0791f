"""Job metrics: runs and their durations, counted by the worker that ran them, and two
figures read at scrape time (registered in app.core.metrics.SCRAPE_TIME when this module is
imported; the web's composition root, app/api.py, imports it)."""

import redis
from arq.constants import default_queue_name, in_progress_key_prefix
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlmodel import func, select

from app.core.db import session_scope
from app.core.metrics import SCRAPE_TIME
from app.core.settings import get_settings
from jobs.tables import Job

# A scrape waits at most this long for Redis, and then goes without the queue depth.
QUEUE_DEPTH_TIMEOUT_SECONDS = 1.0

JOB_RUNS = Counter(
    "strata_job_runs_total",
    "Job runs (attempts) finished by a worker, by kind and the status the job was left in (queued: it will run again)",
    ["kind", "status"],
)
JOB_RUN_DURATION = Histogram(
    "strata_job_run_duration_seconds",
    "How long one run (attempt) of a job took in a worker, by kind",
    ["kind"],
    buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)


class JobsCollector(Collector):
    """Jobs by kind and status, read from the durable job table at scrape time, so
    every web replica reports the same numbers whichever worker ran the jobs."""

    def collect(self):
        family = GaugeMetricFamily("strata_jobs", "Jobs by kind and status", labels=["kind", "status"])
        try:
            with session_scope() as db_session:
                rows = db_session.exec(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
                for kind, status, count in rows:
                    family.add_metric([kind, status], count)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is down
            pass
        yield family


class QueueDepthCollector(Collector):
    """Jobs waiting in the arq queue for a worker to take them (running ones stay in arq's
    queue until they end, so they are left out), read from Redis at scrape time. No sample
    while Redis does not answer: the scrape still succeeds."""

    def collect(self):
        family = GaugeMetricFamily(
            "strata_job_queue_depth", "Jobs in the Redis queue that no worker has started yet (deferred retries too)"
        )
        try:
            waiting = _waiting_jobs()
        except redis.RedisError:
            pass
        else:
            family.add_metric([], waiting)
        yield family


def _waiting_jobs() -> int:
    client = redis.Redis.from_url(
        get_settings().effective_redis_url,
        socket_timeout=QUEUE_DEPTH_TIMEOUT_SECONDS,
        socket_connect_timeout=QUEUE_DEPTH_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        # Only Strata's jobs (queued under their Job id, hex): arq's own cron entries, such as
        # the schedules tick waiting for its minute, are named "<cron name>:<time>".
        queued = [job_id for job_id in client.zrange(default_queue_name, 0, -1) if b":" not in job_id]
        if not queued:
            return 0
        running = client.exists(*(in_progress_key_prefix.encode() + job_id for job_id in queued))
        return len(queued) - running
    finally:
        client.close()


SCRAPE_TIME.register(JobsCollector())
SCRAPE_TIME.register(QueueDepthCollector())
