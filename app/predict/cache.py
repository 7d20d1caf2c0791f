"""Redis for predictions: cached answers per (version, input) and served counters.
Redis is an accelerator here, never a dependency: when it is down, predictions are
computed uncached (and Redis is left alone for a few seconds, see loop_redis)."""

import asyncio
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

import redis
import structlog

from app.core.clients import loop_redis, mark_redis_down
from app.core.metrics import PREDICTION_CACHE
from app.core.settings import get_settings
from app.predict.serving import Output

log = structlog.get_logger("strata.predict")

_PREFIX = "strata:predict"


def input_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _answer_key(version_id: int, text: str) -> str:
    return f"{_PREFIX}:answer:{version_id}:{input_sha256(text)}"


def served_key(version_id: int) -> str:
    return f"{_PREFIX}:served:{version_id}"


def _failed(exc: Exception) -> None:
    mark_redis_down()
    log.warning("predict.redis_unavailable", error=str(exc))


async def lookup(version_id: int, texts: list[str]) -> list[Output | None]:
    """Cached answers, None where there is none (or Redis is down)."""
    client = loop_redis()
    answers: list[Output | None] = [None] * len(texts)
    if client is not None:
        try:
            raw = await client.mget([_answer_key(version_id, text) for text in texts])
            answers = [json.loads(value) if value else None for value in raw]
        except (redis.RedisError, OSError) as exc:
            _failed(exc)
    hits = sum(answer is not None for answer in answers)
    if hits:
        PREDICTION_CACHE.labels("hit").inc(hits)
    if len(texts) - hits:
        PREDICTION_CACHE.labels("miss").inc(len(texts) - hits)
    return answers


@dataclass
class _PendingWrites:
    """What the stores of one turn of an event loop write, in one round trip."""

    loop: asyncio.AbstractEventLoop
    written: asyncio.Future
    answers: dict[str, str] = field(default_factory=dict)
    served: Counter[int] = field(default_factory=Counter)


# Per event loop, the writes the next store joins (until they are sent); the tasks sending them.
_pending: dict[int, _PendingWrites] = {}
_writers: set[asyncio.Task] = set()


async def store(version_id: int, computed: dict[str, Output], served: int) -> None:
    """Caches freshly computed answers and counts what the version served; returns once written.

    The requests of one model batch finish in the same turn of the event loop: their stores
    are sent together, one pipeline instead of a round trip each."""
    client = loop_redis()
    if client is None:
        return
    loop = asyncio.get_running_loop()
    pending = _pending.get(id(loop))
    if pending is None or pending.loop is not loop:
        pending = _pending[id(loop)] = _PendingWrites(loop, loop.create_future())
        writer = loop.create_task(_write(client, pending))
        _writers.add(writer)
        writer.add_done_callback(_writers.discard)
    if get_settings().prediction_cache_ttl_seconds > 0:
        for text, output in computed.items():
            pending.answers[_answer_key(version_id, text)] = json.dumps(output)
    pending.served[version_id] += served
    await asyncio.shield(pending.written)


async def _write(client, pending: _PendingWrites) -> None:
    if _pending.get(id(pending.loop)) is pending:
        del _pending[id(pending.loop)]
    try:
        async with client.pipeline(transaction=False) as pipe:
            for key, value in pending.answers.items():
                pipe.set(key, value, ex=get_settings().prediction_cache_ttl_seconds)
            for version_id, count in pending.served.items():
                pipe.incrby(served_key(version_id), count)
            await pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _failed(exc)
    finally:
        pending.written.set_result(None)


def served_counts(version_ids: list[int]) -> dict[int, int] | None:
    """Served counters for the registry pages (sync: services run in threads); None if Redis is down."""
    if not version_ids:
        return {}
    client = redis.Redis.from_url(
        get_settings().effective_redis_url, socket_timeout=1, socket_connect_timeout=1, decode_responses=True
    )
    try:
        values = client.mget([served_key(version_id) for version_id in version_ids])
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    return {version_id: int(value or 0) for version_id, value in zip(version_ids, values, strict=True)}
