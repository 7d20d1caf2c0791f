"""The prediction log: a sample of predictions (version, caller, latency, label, confidence,
input hash; never the input) kept for monitoring.

Sampled rows wait here (per event loop) and are written together about once a second: a
transaction per prediction would cost more than the prediction. A crash loses at most that
second of samples."""

import asyncio
import random

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


def discard_pending_logs() -> None:
    """Drop samples not written yet (tests switch databases between them)."""
    for task in _flushers.values():
        task.cancel()
    _flushers.clear()
    _pending_logs.clear()


def sample(served: ServedVersion, caller: str, latency_ms: float, rows: list[tuple[str, Output, bool]]) -> None:
    """Logs one request's (input, output, cached) rows at STRATA_PREDICTION_LOG_SAMPLE_RATE."""
    sample_rate = get_settings().prediction_log_sample_rate
    if sample_rate <= 0 or random.random() >= sample_rate:  # noqa: S311 - sampling, not security
        return
    loop_id = id(asyncio.get_running_loop())
    _pending_logs.setdefault(loop_id, []).extend(
        PredictionLog(
            version_id=served.ref.id,
            caller=caller[:64],
            latency_ms=latency_ms,
            label=output["label"],
            confidence=output["confidence"],
            input_sha256=cache.input_sha256(text),
            cached=cached,
        )
        for text, output, cached in rows
    )
    if loop_id not in _flushers:
        _flushers[loop_id] = asyncio.create_task(_flush_logs(loop_id))
