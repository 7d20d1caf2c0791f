"""Request rate limits per user and per API key: a token bucket in Redis.

Each caller has a bucket of `limit` tokens that refills at `limit` per minute; a request
takes one token, and one that finds none is answered 429 with the seconds until a token
is back (Retry-After). The bucket lives in Redis, updated by one Lua script (atomic, with
Redis's clock), so every web replica counts against the same limit. While Redis is down
requests are not limited: refusing every request would be worse than not counting them.

The limit is STRATA_RATE_LIMIT_PER_MINUTE, or an admin's override for one API key
(kept by the auth domain, app/auth/rate_limits.py)."""

import hashlib
import math

import redis
import structlog

from app.core.clients import loop_redis, mark_redis_down
from app.core.errors import TooManyAttempts

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

_TAKE_TOKEN_SHA1 = hashlib.sha1(_TAKE_TOKEN.encode()).hexdigest()


async def _take_token_script(client, key: str, limit_per_minute: int):
    """By the script's digest (Redis keeps scripts it has run): the script's text goes to Redis,
    and is hashed there, only the first time (or after a restart or SCRIPT FLUSH)."""
    try:
        return await client.evalsha(_TAKE_TOKEN_SHA1, 1, key, limit_per_minute)
    except redis.exceptions.NoScriptError:
        return await client.eval(_TAKE_TOKEN, 1, key, limit_per_minute)


async def take_token(identity: str, limit_per_minute: int) -> None:
    """One request by `identity` ("user:<id>" or "key:<id>"); raises TooManyAttempts when over the limit."""
    client = loop_redis()
    if client is None:
        return
    try:
        wait_ms = int(await _take_token_script(client, f"strata:ratelimit:{identity}", limit_per_minute))
    except (redis.RedisError, OSError) as exc:
        mark_redis_down()
        log.warning("ratelimit.redis_unavailable", error=str(exc))
        return
    if wait_ms > 0:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        raise TooManyAttempts(
            f"Rate limit of {limit_per_minute} requests a minute reached; retry in {retry_after} s.", retry_after
        )
