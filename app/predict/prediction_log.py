"""The prediction log: a sample of predictions (version, caller, latency, label, confidence,
input hash; never the input) kept for monitoring.

Sampled rows wait per event loop and are written together about once a second
(app/core/write_behind.py): a transaction per prediction would cost more than the prediction.
A crash loses at most that second of samples."""

import random
import uuid

from app.core.settings import get_settings
from app.core.write_behind import WriteBehind
from app.predict import cache
from app.predict.routing import ServedVersion
from app.predict.serving import Output
from app.predict.tables import PredictionLog

_log_rows = WriteBehind("prediction_log")


async def write_pending() -> None:
    """Writes this event loop's waiting samples now: feedback may name a prediction made a
    moment ago."""
    await _log_rows.write_pending()


def discard_pending_logs() -> None:
    """Drop samples not written yet (tests switch databases between them)."""
    _log_rows.discard()


def _sampled(always: bool) -> bool:
    sample_rate = get_settings().prediction_log_sample_rate
    return always or (sample_rate > 0 and random.random() < sample_rate)  # noqa: S311 - sampling, not security


def sample(
    served: ServedVersion,
    caller: str,
    latency_ms: float,
    rows: list[tuple[str, Output, bool]],
    *,
    always: bool = False,
) -> list[str | None]:
    """Logs one request's (input, output, cached) rows at STRATA_PREDICTION_LOG_SAMPLE_RATE
    (every time when `always`: a person on the Predict page may give feedback). Returns each
    row's prediction id, the one feedback names, or None for every row when not sampled."""
    if not _sampled(always):
        return [None] * len(rows)
    logged = [
        PredictionLog(
            version_id=served.ref.id,
            caller=caller[:64],
            latency_ms=latency_ms,
            label=output["label"],
            confidence=output["confidence"],
            input_sha256=cache.input_sha256(text),
            cached=cached,
            prediction_id=uuid.uuid4().hex,
        )
        for text, output, cached in rows
    ]
    _log_rows.add(logged)
    return [row.prediction_id for row in logged]


def sample_failure(served: ServedVersion, caller: str, latency_ms: float, inputs: list[str], error: Exception) -> None:
    """Logs a request that failed after its version was chosen, one row per input, at the
    same sample rate: the error counts of the Monitoring page come from these rows."""
    if not _sampled(False):
        return
    _log_rows.add(
        [
            PredictionLog(
                version_id=served.ref.id,
                caller=caller[:64],
                latency_ms=latency_ms,
                input_sha256=cache.input_sha256(text),
                error=type(error).__name__[:100],
            )
            for text in inputs
        ]
    )
