"""Recording usage: services measure each served request of interest with `measure(...)`,
whether a page's event handler or an API route called them, so that both count alike.

Whose request it is comes from the service's `caller` argument, which routes pass and pages
do not (app.auth.deps.Caller): "key:<id>" is an API key, "user:<id>" the API with a session
cookie, and None a page. Rows are written behind the requests, in bulk (app.core.write_behind)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import structlog

from app.auth.tables import User
from app.core.errors import StrataError
from app.core.write_behind import WriteBehind
from app.generation.schemas import TokenUsage
from app.usage.tables import UsageEvent

Endpoint = Literal["predict", "ask", "chat", "embeddings"]
ENDPOINTS: tuple[Endpoint, ...] = ("predict", "ask", "chat", "embeddings")
KEY_CALLER_PREFIX = "key:"

log = structlog.get_logger("strata.usage")

_usage_rows = WriteBehind("usage_event")


@dataclass
class Meter:
    """A request being measured. The service may set `status_code` (an answer that failed
    inside a stream that had started as 200) and fills `tokens` as its generator runs."""

    actor: User
    caller: str | None
    endpoint: Endpoint
    model: str
    tokens: TokenUsage | None = None
    status_code: int = 200
    started: float = field(default_factory=time.perf_counter)


def api_key_id_of(caller: str | None) -> int | None:
    if caller is None or not caller.startswith(KEY_CALLER_PREFIX):
        return None
    return int(caller.removeprefix(KEY_CALLER_PREFIX))


def _event(meter: Meter) -> UsageEvent:
    tokens = meter.tokens or TokenUsage()
    return UsageEvent(
        user_id=meter.actor.id,
        user_email=meter.actor.email,
        api_key_id=api_key_id_of(meter.caller),
        channel="ui" if meter.caller is None else "api",
        endpoint=meter.endpoint,
        model=meter.model[:100],
        status_code=meter.status_code,
        latency_ms=round((time.perf_counter() - meter.started) * 1000, 3),
        prompt_tokens=tokens.prompt_tokens,
        completion_tokens=tokens.completion_tokens,
    )


@contextmanager
def measure(
    *, actor: User, caller: str | None, endpoint: Endpoint, model: str, tokens: TokenUsage | None = None
) -> Iterator[Meter]:
    """Records one usage event when the block ends: its status is the StrataError's (429 when
    rate limited, 404, 503, ...), 500 for any other exception, else the meter's (200). A
    stream its client left (GeneratorExit, cancellation) counts with the status it had."""
    meter = Meter(actor=actor, caller=caller, endpoint=endpoint, model=model, tokens=tokens)
    try:
        yield meter
    except StrataError as exc:
        meter.status_code = exc.status_code
        raise
    except Exception:
        meter.status_code = 500
        raise
    finally:
        try:
            _usage_rows.add([_event(meter)])
        except RuntimeError:  # no running event loop: a stream collected after its loop closed
            log.warning("usage.not_recorded", endpoint=endpoint, model=model)


async def write_pending() -> None:
    """Writes this event loop's waiting usage events now."""
    await _usage_rows.write_pending()
