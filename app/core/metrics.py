"""Prometheus metrics, served at /metrics."""

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest

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


def render_metrics() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
