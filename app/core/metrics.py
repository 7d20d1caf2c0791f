"""Prometheus metrics, served at /metrics by the web process.

Several processes on one machine record metrics: the web server's workers and the arq
workers (jobs and the inference they run). prometheus_client's multiprocess mode makes one
/metrics of them all: when PROMETHEUS_MULTIPROC_DIR is set (the runner sets
<data_dir>/run/metrics for every Strata program of `strata run`), each process writes its
values to files there, and /metrics adds them up. Counters and histograms of a process
that stopped keep counting in the totals, so they never go backwards while the stack runs.
The directory is one machine's: processes on other machines write their own, and
Prometheus scrapes each machine (a web replica's /metrics, or a worker machine's
STRATA_WORKER_METRICS_PORT).

Metrics read at scrape time from shared state (the job table, the Redis queue) are
collectors registered in SCRAPE_TIME: only the web's /metrics serves them, so that they are
counted once per scrape target and not once per process.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.exposition import generate_latest

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "strata_http_requests_total", "HTTP requests answered by the API", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram("strata_http_request_duration_seconds", "API request latency", ["method", "route"])
MODEL_INFERENCE_LATENCY = Histogram(
    "strata_model_inference_duration_seconds",
    "Latency of one model call (a batch of inputs)",
    ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

SERVING_BATCH_SIZE = Histogram(
    "strata_serving_batch_size",
    "Inputs per model call after dynamic batching",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
PREDICTION_CACHE = Counter(
    "strata_prediction_cache_total", "Prediction inputs answered from the cache (hit) or computed (miss)", ["result"]
)
PREDICTIONS_SERVED = Counter(
    "strata_predictions_total", "Prediction inputs answered, by model and version", ["model", "version"]
)

# Set by the monitoring domain (app/monitoring/), in whichever process computes drift (the
# scheduled drift job in a worker, an on-demand computation in the web): .set() the latest
# score of each statistic (psi, js, wasserstein, ks, chi2, ...). "mostrecent": /metrics shows
# the value last set by any process of the machine, also after that process stopped.
MODEL_DRIFT_SCORE = Gauge(
    "strata_model_drift_score",
    "Latest drift score of a model version, by statistic (current window against its reference)",
    ["model", "version", "statistic"],
    multiprocess_mode="mostrecent",
)
# Set by the alerts domain whenever alerts open or are acknowledged: .set() the number of
# open alerts of each kind (drift, accuracy, error_rate) as the database holds it, never
# .inc()/.dec(), so that every process reports the same count whichever changed it last.
OPEN_ALERTS = Gauge(
    "strata_open_alerts",
    "Alerts open (not yet acknowledged), by kind",
    ["kind"],
    multiprocess_mode="mostrecent",
)

SCRAPE_TIME = CollectorRegistry()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


def process_metrics() -> CollectorRegistry:
    """The metrics the processes record: those of every process of this machine in
    multiprocess mode, else this process's own (with its CPU, memory and GC figures)."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return registry


def render_metrics() -> tuple[bytes, str]:
    return generate_latest(process_metrics()) + generate_latest(SCRAPE_TIME), CONTENT_TYPE_LATEST


def serve_process_metrics(*, host: str, port: int) -> bool:
    """Serves process_metrics() over HTTP from a background thread, for a machine that runs
    workers and no web process; False when another process (in multiprocess mode, another
    worker of this machine, which serves this one's metrics too) has the port."""
    try:
        start_http_server(port, addr=host, registry=process_metrics())
    except OSError:
        return False
    return True


def forget_live_values() -> None:
    """Drops this process's values of "live" gauges from the multiprocess directory as it
    exits (its counters and histograms stay in the totals)."""
    if directory := multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid(), path=directory)
