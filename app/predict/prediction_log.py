"""The prediction log: a sample of predictions (version, caller, latency, label, confidence,
input hash; never the input) kept for monitoring.

Sampled rows wait here (per event loop) and are written together about once a second: a
transaction per prediction would cost more than the prediction. A crash loses at most that
second of samples."""

import asyncio
import random
import uuid

import structlog
from sqlmodel import Session

from app.core.db import run_in_session
from app.core.settings import get_settings
from app.predict import cache
from app.predict.routing import ServedVersion
from app.predict.serving import Output
from app.predict.tables import PredictionLog

LOG_FLUSH_SECONDS = 1.0

log = structlog.get_logger("strata.predict")

_pending_logs: dict[int, list[PredictionLog]] = {}
_flushers: dict[int, asyncio.Task] = {}


def _insert_logs(*, db_session: Session, rows: list[PredictionLog]) -> None:
    db_session.add_all(rows)


async def _flush_logs(loop_id: int) -> None:
    await asyncio.sleep(LOG_FLUSH_SECONDS)
    rows = _pending_logs.pop(loop_id, [])
    _flushers.pop(loop_id, None)
    try:
        await run_in_session(_insert_logs, rows=rows)
    except Exception:  # noqa: BLE001 - monitoring must never fail predictions
        log.exception("predict.log_failed", rows=len(rows))


async def write_pending() -> None:
    """Writes this event loop's waiting samples now: feedback may name a prediction made a
    moment ago."""
    loop_id = id(asyncio.get_running_loop())
    flusher = _flushers.pop(loop_id, None)
    if flusher is not None:
        # Still in the dict, so still asleep: it has not taken the rows, which are written here.
        flusher.cancel()
    rows = _pending_logs.pop(loop_id, [])
    if rows:
        await run_in_session(_insert_logs, rows=rows)


def discard_pending_logs() -> None:
    """Drop samples not written yet (tests switch databases between them)."""
    for task in _flushers.values():
        task.cancel()
    _flushers.clear()
    _pending_logs.clear()


def _enqueue(rows: list[PredictionLog]) -> None:
    loop_id = id(asyncio.get_running_loop())
    _pending_logs.setdefault(loop_id, []).extend(rows)
    if loop_id not in _flushers:
        _flushers[loop_id] = asyncio.create_task(_flush_logs(loop_id))


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
    _enqueue(logged)
    return [row.prediction_id for row in logged]


def sample_failure(served: ServedVersion, caller: str, latency_ms: float, inputs: list[str], error: Exception) -> None:
    """Logs a request that failed after its version was chosen, one row per input, at the
    same sample rate: the error counts of the Monitoring page come from these rows."""
    if not _sampled(False):
        return
    _enqueue(
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
