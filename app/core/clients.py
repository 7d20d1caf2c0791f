"""Clients for Redis and Chroma, built from the settings. Short timeouts: a dead
service must turn into a clear error quickly, never a hung page."""

import asyncio
import time
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.core.settings import get_settings

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

REDIS_TIMEOUT_SECONDS = 2.0


def _fail_fast() -> dict:
    # redis-py retries refused connections with backoff by default; a user waiting
    # on a page wants the error now, and callers retry at their own level.
    return {
        "socket_timeout": REDIS_TIMEOUT_SECONDS,
        "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
    }


def get_async_redis() -> aioredis.Redis:
    """A fresh async client: async clients are bound to the event loop that created them."""
    return aioredis.Redis.from_url(get_settings().effective_redis_url, decode_responses=True, **_fail_fast())


# After a failure, per-request Redis work (rate limits, caches) skips Redis this long
# instead of paying a connect timeout on every request.
REDIS_RETRY_AFTER_FAILURE_SECONDS = 5.0
_loop_clients: dict[int, aioredis.Redis] = {}
_redis_down_until = 0.0


def loop_redis() -> aioredis.Redis | None:
    """The async client of the running event loop, kept for its life, for per-request work
    where a fresh client per call would cost a connection; None while Redis is marked down."""
    if time.monotonic() < _redis_down_until:
        return None
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _loop_clients:
        _loop_clients[loop_id] = get_async_redis()
    return _loop_clients[loop_id]


def mark_redis_down() -> None:
    global _redis_down_until
    _redis_down_until = time.monotonic() + REDIS_RETRY_AFTER_FAILURE_SECONDS


def reset_loop_redis() -> None:
    """Forget the kept clients and the down mark (tests stop and switch Redis servers)."""
    global _redis_down_until
    _loop_clients.clear()
    _redis_down_until = 0.0


def get_job_queue() -> ArqRedis:
    """A fresh arq client for enqueueing jobs (the worker builds its own from arq_redis_settings)."""
    return ArqRedis.from_url(get_settings().effective_redis_url, **_fail_fast())


def arq_redis_settings() -> RedisSettings:
    settings = RedisSettings.from_dsn(get_settings().effective_redis_url)
    settings.conn_timeout = int(REDIS_TIMEOUT_SECONDS)
    settings.conn_retries = 1
    return settings


@lru_cache
def get_chroma() -> "ClientAPI":
    """One client per process: creating it validates tenant and database with extra requests.
    A failed creation raises and is not cached, so a later call retries."""
    # Imported on first use: the chromadb package (with its telemetry exporters) costs
    # ~80 MB, which a worker that never ingests a document need not hold.
    import chromadb

    url = urlparse(get_settings().effective_chroma_url)
    return chromadb.HttpClient(
        host=url.hostname or "127.0.0.1",
        port=url.port or (443 if url.scheme == "https" else 8000),
        ssl=url.scheme == "https",
        settings=chromadb.Settings(anonymized_telemetry=False),
    )
