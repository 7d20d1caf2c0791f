"""The workers' metrics in what Prometheus scrapes. Real `strata worker` processes run jobs
and embed; the web's /metrics (the in-process API here) adds their figures to its own, as in
the `strata run` stack: tests/conftest.py gives the test process and the workers it starts one
PROMETHEUS_MULTIPROC_DIR, as the runner gives its web and workers."""

import asyncio
import os

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from jobs import service
from jobs.tables import JobStatus
from tests.conftest import WorkerProcess, free_port, sign_in, wait_until
from tests.jobs.test_worker import VERIFY, wait_for_status, wait_mid_run
from tests.knowledge.conftest import create_kb, upload, wait_documents

EMBEDDER = "all-MiniLM-L6-v2"
INGEST = "ingest_document"
FINISHED = [status for status in JobStatus if status.finished]

Scrape = dict[tuple[str, frozenset], float]


def parse(exposition: str) -> Scrape:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


async def scrape(client) -> Scrape:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    return parse(response.text)


def value(scraped: Scrape, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


def job_runs(scraped: Scrape, kind: str, status: str) -> float:
    return value(scraped, "strata_job_runs_total", kind=kind, status=status)


@pytest.mark.one_backend
async def test_several_workers_jobs_and_inference_reach_metrics_and_stay_after_they_stop(
    chroma_server, client, workers, staff
):
    before = await scrape(client)
    first = workers()
    headers = await sign_in(client, "staff@x.io")
    started = await client.post("/api/v1/jobs", headers=headers, json={"kind": VERIFY, "params": {}})
    assert started.status_code == 202, started.text
    verify_id = started.json()["id"]

    # A running job has left the queue for Prometheus, though arq keeps it in its sorted set.
    await asyncio.to_thread(wait_mid_run, verify_id)
    running = await scrape(client)
    assert value(running, "strata_job_queue_depth") == 0
    assert value(running, "strata_jobs", kind=VERIFY, status="running") == 1

    # A second worker, and an ingestion whose embedding runs in one of the two workers.
    second = workers()
    kb = await create_kb(client, headers)
    text = b"The Mock Turtle sang a song about beautiful soup. " * 40
    assert (await upload(client, headers, kb["id"], ("soup.txt", text))).status_code == 202
    [document] = await wait_documents(client, headers, kb["id"])
    assert document["status"] == "ready", document
    await asyncio.to_thread(wait_for_status, verify_id, *FINISHED)

    after = await scrape(client)
    assert job_runs(after, VERIFY, "succeeded") - job_runs(before, VERIFY, "succeeded") == 1
    assert job_runs(after, INGEST, "succeeded") - job_runs(before, INGEST, "succeeded") == 1
    for kind in (VERIFY, INGEST):
        duration = "strata_job_run_duration_seconds_count"
        assert value(after, duration, kind=kind) - value(before, duration, kind=kind) == 1
    embedded = "strata_model_inference_duration_seconds_count"
    # The test process embeds nothing here: every model call counted came from a worker.
    assert value(after, embedded, model=EMBEDDER) - value(before, embedded, model=EMBEDDER) >= 1

    # Stopped workers' counts stay in the totals: a counter Prometheus scrapes never goes back.
    first.stop()
    second.stop()
    stopped = await scrape(client)
    for kind in (VERIFY, INGEST):
        assert job_runs(stopped, kind, "succeeded") == job_runs(after, kind, "succeeded")
    assert value(stopped, embedded, model=EMBEDDER) == value(after, embedded, model=EMBEDDER)


async def test_queue_depth_counts_waiting_jobs_and_a_scrape_survives_redis_down(client, staff, valkey_server):
    for _ in range(2):
        await service.enqueue(kind=VERIFY, params={}, actor=staff, max_attempts=1)
    # A worker's cron entry (the schedules tick waiting for its minute) is no job waiting.
    redis.Redis.from_url(os.environ["STRATA_REDIS_URL"]).zadd("arq:queue", {"schedules.tick:1764806400000": 0})
    assert value(await scrape(client), "strata_job_queue_depth") == 2

    valkey_server.stop()
    try:
        scraped = await scrape(client)
    finally:
        valkey_server.start()
    assert not any(name == "strata_job_queue_depth" for name, _ in scraped)
    assert value(scraped, "strata_jobs", kind=VERIFY, status="queued") == 2  # the rest is still there


@pytest.mark.one_backend
def test_a_worker_on_a_machine_of_its_own_serves_its_metrics_on_its_port(db, worker_env, staff):
    """No web process beside it, nor a multiprocess directory: Prometheus scrapes the worker."""
    port = free_port()
    env = {key: value for key, value in worker_env.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    worker = WorkerProcess({**env, "STRATA_WORKER_METRICS_PORT": str(port)}).start()

    def failed_runs_served() -> Scrape | None:
        scraped = parse(httpx.get(f"http://127.0.0.1:{port}/metrics").text)
        return scraped if job_runs(scraped, INGEST, "failed") else None

    try:
        # An ingestion job without its document fails at once in the worker.
        job = asyncio.run(service.enqueue(kind=INGEST, params={}, actor=staff, max_attempts=1))
        wait_for_status(job.id, *FINISHED)
        scraped = wait_until(failed_runs_served, 30, "the failed run on the worker's metrics port")
    finally:
        worker.stop()
    assert job_runs(scraped, INGEST, "failed") == 1
    assert value(scraped, "process_cpu_seconds_total") > 0  # the worker process's own figures
    assert not any(name == "strata_jobs" for name, _ in scraped)  # read from shared state: the web serves it
