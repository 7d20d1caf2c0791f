"""Jobs by kind and status for /metrics (registered by the web's composition root, app/api.py)."""

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlmodel import func, select

from app.core.db import session_scope
from jobs.tables import Job


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


REGISTRY.register(JobsCollector())
