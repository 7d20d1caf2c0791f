"""The prediction log: a sample of predictions (version, caller, latency, label, confidence,
input hash and the input's drift sketch; the input itself only with
STRATA_PREDICTION_LOG_INPUTS=true) kept for monitoring.

Sampled rows wait per event loop and are written together about once a second
(app/core/write_behind.py): a transaction per prediction would cost more than the prediction.
A crash loses at most that second of samples.

Each served row's sketch (models.sketch: length, out-of-vocabulary share, projected embedding) is
computed when its rows are written, in that worker thread, off the request path: the projection
comes with the prediction when the model embedded the input anyway (zero-shot and embedding
classifiers, embedders); otherwise the sampled inputs are embedded then, in one batch."""

import random
import uuid

import structlog
from sqlmodel import Session

from app.core import ml
from app.core.settings import get_settings
from app.core.write_behind import WriteBehind
from app.predict import cache
from app.predict.routing import ServedVersion
from app.predict.serving import Output
from app.predict.tables import PredictionLog
from models.sketch import encode_projection

log = structlog.get_logger("strata.predict")


def _insert_with_sketches(*, db_session: Session, rows: list[PredictionLog]) -> None:
    """Sketches the served rows' inputs (carried in `input_text` until here), keeps the text only
    with STRATA_PREDICTION_LOG_INPUTS, and adds the rows. A sketch that cannot be computed (the
    embedder not built) leaves the row without one: the log never fails for drift's sake."""
    served = [row for row in rows if row.error is None and row.input_text is not None]
    try:
        sketches = (
            ml.get_sketcher().sketch([row.input_text for row in served], [row.input_sketch for row in served])
            if served
            else []
        )
    except Exception:  # noqa: BLE001 - monitoring must never lose the predictions' rows
        log.exception("predict.sketch_failed", rows=len(served))
        sketches = []
    for row, sketch in zip(served, sketches, strict=False):
        row.input_length, row.input_oov_share, row.input_sketch = sketch.length, sketch.oov_share, sketch.projection
    keep_inputs = get_settings().prediction_log_inputs
    for row in rows:
        if not keep_inputs:
            row.input_text = None
        if row.input_length is None:
            row.input_sketch = None  # a projection without its sketch's other figures is no sketch
    db_session.add_all(rows)


_log_rows = WriteBehind("prediction_log", insert=_insert_with_sketches)


async def write_pending() -> None:
    """Writes this event loop's waiting samples now: feedback may name a prediction made a
    moment ago."""
    await _log_rows.write_pending()


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
            # Until the rows are written: the text is sketched (and dropped unless kept) there.
            input_text=text,
            input_sketch=encode_projection(output["projection"]) if output.get("projection") else None,
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
