"""Limits on what one caller may cost: requests a minute (a token bucket) and answers being
written at once (stream slots), both in Redis so that every web replica counts against the
same limit, each with a per-process stand-in while Redis is down.

Requests: each caller has a bucket of `limit` tokens that refills at `limit` per minute; a
request takes one token, and one that finds none is answered 429 with the seconds until a
token is back (Retry-After). The bucket is updated by one Lua script (atomic, with Redis's
clock). While Redis is down each process keeps its own buckets: a caller then gets at most the
limit per process, which is still a limit (N replicas: N times it).

Streams: a user's answers being written (streamed or not) hold a slot each, at most
STRATA_MAX_STREAMS_PER_USER; the next one is refused 429. A slot is released when its answer
ends, fails or is cancelled (a client that disconnects). Each slot carries its own expiry,
renewed while the answer runs, so the slots of a replica that died expire without taking the
others with them.

The per-minute limit is STRATA_RATE_LIMIT_PER_MINUTE, or an admin's override for one API key
(kept by the auth domain, app/auth/rate_limits.py)."""

import asyncio
import contextlib
import hashlib
import math
import time
import uuid
from collections.abc import AsyncIterator

import redis
import structlog

from app.core.clients import loop_redis, mark_redis_down
from app.core.errors import TooManyAttempts
from app.core.settings import get_settings

log = structlog.get_logger("strata.ratelimit")

_TAKE_TOKEN = """
local capacity = tonumber(ARGV[1])
local per_ms = capacity / 60000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or capacity
local at = tonumber(bucket[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * per_ms)
local wait_ms = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait_ms = math.ceil((1 - tokens) / per_ms)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], 60000 + 1000)
return wait_ms
"""

# KEYS[1]: the user's slots (a sorted set: slot id -> expiry in ms); ARGV: limit, slot id, ttl ms.
# Returns 1 when the slot is taken (or renewed: a slot already held only gets a later expiry).
_TAKE_SLOT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1
"""

_SCRIPTS = {script: hashlib.sha1(script.encode()).hexdigest() for script in (_TAKE_TOKEN, _TAKE_SLOT)}

# A slot lives this long unless renewed; it is renewed a third of the way, so a replica that
# dies leaves its slots taken for at most this long.
STREAM_SLOT_TTL_SECONDS = 60.0
STREAM_RETRY_AFTER_SECONDS = 5
# Callers whose per-process bucket is full again are forgotten beyond this many.
_LOCAL_BUCKETS_KEPT = 10_000


async def _run_script(client, script: str, key: str, *args) -> int:
    """By the script's digest (Redis keeps scripts it has run): the script's text goes to Redis,
    and is hashed there, only the first time (or after a restart or SCRIPT FLUSH)."""
    try:
        return int(await client.evalsha(_SCRIPTS[script], 1, key, *args))
    except redis.exceptions.NoScriptError:
        return int(await client.eval(script, 1, key, *args))


def _redis_failed(exc: Exception) -> None:
    mark_redis_down()
    log.warning("ratelimit.redis_unavailable", error=str(exc))


# ------------------------------------------------------------------ requests a minute


# identity -> (tokens, monotonic time they were counted): the buckets while Redis is down.
_local_buckets: dict[str, tuple[float, float]] = {}


def _take_local_token(identity: str, limit_per_minute: int) -> int:
    """The Lua script's arithmetic on this process's own bucket; the wait in ms (0: taken)."""
    now = time.monotonic()
    per_second = limit_per_minute / 60
    if len(_local_buckets) > _LOCAL_BUCKETS_KEPT:
        for key, (_tokens, at) in list(_local_buckets.items()):
            if now - at >= 60:
                del _local_buckets[key]
    tokens, at = _local_buckets.get(identity, (float(limit_per_minute), now))
    tokens = min(limit_per_minute, tokens + (now - at) * per_second)
    wait_ms = 0
    if tokens >= 1:
        tokens -= 1
    else:
        wait_ms = math.ceil((1 - tokens) / per_second * 1000)
    _local_buckets[identity] = (tokens, now)
    return wait_ms


async def take_token(identity: str, limit_per_minute: int) -> None:
    """One request by `identity` ("user:<id>" or "key:<id>"); raises TooManyAttempts when over the limit."""
    client = loop_redis()
    wait_ms = None
    if client is not None:
        try:
            wait_ms = await _run_script(client, _TAKE_TOKEN, f"strata:ratelimit:{identity}", limit_per_minute)
        except (redis.RedisError, OSError) as exc:
            _redis_failed(exc)
    if wait_ms is None:
        wait_ms = _take_local_token(identity, limit_per_minute)
    if wait_ms > 0:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        raise TooManyAttempts(
            f"Rate limit of {limit_per_minute} requests a minute reached; retry in {retry_after} s.", retry_after
        )


async def take_caller_token(user_id: int, caller: str | None = None, limit_per_minute: int | None = None) -> str:
    """One request by `caller` (an API key, "key:<id>", at its own limit: see app.auth.deps) or
    else by the user at STRATA_RATE_LIMIT_PER_MINUTE, for services that pages and routes share;
    returns whom it counted."""
    identity = caller or f"user:{user_id}"
    await take_token(identity, limit_per_minute or get_settings().rate_limit_per_minute)
    return identity


# ------------------------------------------------------------------ answers at once


# user key -> slot ids: the slots while Redis is down.
_local_slots: dict[str, set[str]] = {}
# Releases under way: a cancelled stream's release must finish after its task is gone.
_releases: set[asyncio.Task] = set()


def _slots_key(user_id: int) -> str:
    return f"strata:streams:user:{user_id}"


async def _take_slot(key: str, slot: str, limit: int) -> tuple[bool, bool]:
    """(taken, in Redis): Redis's answer, or this process's own count while Redis is down."""
    client = loop_redis()
    if client is not None:
        try:
            ttl_ms = int(STREAM_SLOT_TTL_SECONDS * 1000)
            return bool(await _run_script(client, _TAKE_SLOT, key, limit, slot, ttl_ms)), True
        except (redis.RedisError, OSError) as exc:
            _redis_failed(exc)
    held = _local_slots.setdefault(key, set())
    if len(held) >= limit:
        return False, False
    held.add(slot)
    return True, False


async def _renew(key: str, slot: str, limit: int) -> None:
    while True:
        await asyncio.sleep(STREAM_SLOT_TTL_SECONDS / 3)
        client = loop_redis()
        if client is None:
            continue  # the slot expires in Redis; the answer goes on (refusing it now helps no one)
        try:
            await _run_script(client, _TAKE_SLOT, key, limit, slot, int(STREAM_SLOT_TTL_SECONDS * 1000))
        except (redis.RedisError, OSError) as exc:
            _redis_failed(exc)


async def _release_in_redis(key: str, slot: str) -> None:
    client = loop_redis()
    if client is None:
        return  # it expires
    try:
        await client.zrem(key, slot)
    except (redis.RedisError, OSError) as exc:
        _redis_failed(exc)


@contextlib.asynccontextmanager
async def stream_slot(user_id: int) -> AsyncIterator[None]:
    """Holds one of the user's STRATA_MAX_STREAMS_PER_USER slots while an answer is written;
    TooManyAttempts (429) when they are all taken."""
    limit = get_settings().max_streams_per_user
    key, slot = _slots_key(user_id), uuid.uuid4().hex
    take = asyncio.create_task(_take_slot(key, slot, limit))
    try:
        taken, in_redis = await asyncio.shield(take)
    except asyncio.CancelledError:
        # The client went away while Redis was taking the slot: give it back once taken, or it
        # would count against the user until it expires.
        _track(asyncio.create_task(_give_back_once_taken(take, key, slot)))
        raise
    if not taken:
        raise TooManyAttempts(
            f"You already have {limit} {'answer' if limit == 1 else 'answers'} being written, the most at once; "
            "wait for one to finish or stop it, then ask again.",
            STREAM_RETRY_AFTER_SECONDS,
        )
    renewal = asyncio.create_task(_renew(key, slot, limit)) if in_redis else None
    try:
        yield
    finally:
        if renewal is not None:
            renewal.cancel()
        # Its own task, shielded: a stream ends by cancellation when its client disconnects,
        # and every await of the cancelled task is cancelled again.
        await asyncio.shield(_track(asyncio.create_task(_give_back(key, slot, in_redis=in_redis))))


def _track(release: asyncio.Task) -> asyncio.Task:
    _releases.add(release)
    release.add_done_callback(_releases.discard)
    return release


async def _give_back(key: str, slot: str, *, in_redis: bool) -> None:
    if in_redis:
        await _release_in_redis(key, slot)
    elif held := _local_slots.get(key):
        held.discard(slot)
        if not held:
            del _local_slots[key]


async def _give_back_once_taken(take: asyncio.Task, key: str, slot: str) -> None:
    taken, in_redis = await take
    if taken:
        await _give_back(key, slot, in_redis=in_redis)
