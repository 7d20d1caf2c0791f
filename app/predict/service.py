"""Predictions: the one entry point the Predict page, the API and the OpenAI-compatible
embeddings call. Each request takes a token from its caller's rate limit, is routed
(production or the canary, sticky per caller), answered from the Redis cache where possible,
otherwise batched through the serving runtime, and sampled into the prediction log. Every
request is also recorded in the usage log (app.usage.recording).

The registry it serves from is app/predict/registry.py."""

import time
from contextlib import nullcontext

from app.auth.tables import User
from app.core import coalesce, ratelimit
from app.core.db import run_in_session
from app.core.errors import InvalidInput, NotFound
from app.core.metrics import PREDICTIONS_SERVED
from app.core.roles import Role, require_role
from app.predict import cache, prediction_log, registry
from app.predict.routing import ServedVersion, choose, routes
from app.predict.schemas import LabelScore, PredictionResponse, PredictionResult
from app.predict.serving import Output, get_runtime
from app.usage import recording as usage_recording

MAX_INPUTS_PER_REQUEST = 64
MAX_INPUT_CHARS = 10_000


def _check_inputs(inputs: list[str]) -> None:
    if not inputs:
        raise InvalidInput("Send at least one input text.")
    if len(inputs) > MAX_INPUTS_PER_REQUEST:
        raise InvalidInput(f"At most {MAX_INPUTS_PER_REQUEST} inputs per request; got {len(inputs)}.")
    for index, text in enumerate(inputs):
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"Input {index} is empty.")
        if len(text) > MAX_INPUT_CHARS:
            raise InvalidInput(f"Input {index} has {len(text)} characters; the limit is {MAX_INPUT_CHARS}.")


async def _served_version(model_name: str, caller: str, version_number: int | None) -> ServedVersion:
    if version_number is not None:
        return await run_in_session(registry.load_pinned, model_name=model_name, version_number=version_number)
    route = routes.get(model_name)
    if route is None:
        route = await coalesce.shared(
            ("route", model_name), lambda: run_in_session(registry.load_route, model_name=model_name)
        )
        routes.put(route)
    served = choose(route, caller)
    if served is None:
        raise NotFound(f"{model_name!r} has no production version yet.")
    return served


def _result(index: int, output: Output, prediction_id: str | None) -> PredictionResult:
    return PredictionResult(
        input_index=index,
        prediction_id=prediction_id,
        label=output["label"],
        confidence=output["confidence"],
        scores=[LabelScore(label=label, probability=p) for label, p in output["scores"]],
        embedding=output["embedding"],
    )


async def predict(
    *,
    actor: User,
    model_name: str,
    inputs: list[str],
    caller: str | None = None,
    limit_per_minute: int | None = None,
    version_number: int | None = None,
    log_always: bool = False,
    record_usage: bool = True,
) -> PredictionResponse:
    """Takes one request from the caller's rate limit, then routes to production or canary
    (sticky per caller) unless a version is pinned. `caller` is whose budget and route this
    is: "key:<id>" for an API key, else "user:<actor id>" (the default); `limit_per_minute`
    is that budget (an API key's own limit; default STRATA_RATE_LIMIT_PER_MINUTE).
    Each result carries a prediction id (for feedback) when its row was logged: sampled at
    STRATA_PREDICTION_LOG_SAMPLE_RATE, or always with `log_always` (the Predict page).
    The request goes into the usage log unless `record_usage` is off (a caller that records
    it as something else: /v1/embeddings).
    No db_session: the registry is read in short sessions of its own (cached routes), so that
    no connection is held while the model runs. Raises TooManyAttempts, InvalidInput, NotFound."""
    require_role(actor, Role.viewer)
    measured = (
        usage_recording.measure(actor=actor, caller=caller, endpoint="predict", model=model_name)
        if record_usage
        else nullcontext()
    )
    with measured:
        return await _predict(
            actor=actor,
            model_name=model_name,
            inputs=inputs,
            caller=caller,
            limit_per_minute=limit_per_minute,
            version_number=version_number,
            log_always=log_always,
        )


async def _predict(
    *,
    actor: User,
    model_name: str,
    inputs: list[str],
    caller: str | None,
    limit_per_minute: int | None,
    version_number: int | None,
    log_always: bool,
) -> PredictionResponse:
    caller = await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    started = time.perf_counter()
    _check_inputs(inputs)
    served = await _served_version(model_name, caller, version_number)
    try:
        outputs = await cache.lookup(served.ref.id, inputs)
        missing = list(dict.fromkeys(text for text, output in zip(inputs, outputs, strict=True) if output is None))
        computed = dict(zip(missing, await get_runtime().run(served.ref, missing), strict=True)) if missing else {}
    except Exception as error:
        prediction_log.sample_failure(served, caller, (time.perf_counter() - started) * 1000, inputs, error)
        raise
    cached_flags = [output is not None for output in outputs]
    outputs = [output if output is not None else computed[text] for text, output in zip(inputs, outputs, strict=True)]
    await cache.store(served.ref.id, computed, served=len(inputs))
    PREDICTIONS_SERVED.labels(model_name, str(served.number)).inc(len(inputs))
    latency_ms = (time.perf_counter() - started) * 1000
    prediction_ids = prediction_log.sample(
        served, caller, latency_ms, list(zip(inputs, outputs, cached_flags, strict=True)), always=log_always
    )
    return PredictionResponse(
        model=model_name,
        version=served.number,
        latency_ms=round(latency_ms, 3),
        cached=sum(cached_flags),
        results=[
            _result(index, output, prediction_id)
            for index, (output, prediction_id) in enumerate(zip(outputs, prediction_ids, strict=True))
        ],
    )
