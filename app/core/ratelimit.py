"""Request rate limits per user and per API key: a token bucket in Redis.

Each caller has a bucket of `limit` tokens that refills at `limit` per minute; a request
takes one token, and one that finds none is answered 429 with the seconds until a token
is back (Retry-After). The bucket lives in Redis, updated by one Lua script (atomic, with
Redis's clock), so every web replica counts against the same limit. While Redis is down
requests are not limited: refusing every request would be worse than not counting them.

The limit is STRATA_RATE_LIMIT_PER_MINUTE, or an admin's override for one API key."""

import hashlib
import math
import time

import redis
import structlog
from sqlmodel import Session, select

from app.auth.service import require_role
from app.auth.tables import ApiKey, Role, User
from app.core.clients import loop_redis, mark_redis_down
from app.core.errors import InvalidInput, NotFound, TooManyAttempts
from app.core.security import token_hash
from app.predict.tables import ApiKeyRateLimit

log = structlog.get_logger("strata.ratelimit")
audit = structlog.get_logger("strata.audit")

MAX_REQUESTS_PER_MINUTE = 1_000_000
# How long a process trusts what it read about an API key's limit.
KEY_LIMIT_TTL_SECONDS = 10.0

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

_key_limits: dict[str, tuple[float, int, int | None]] = {}


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


def remembered_api_key_identity(plaintext: str) -> tuple[int, int | None] | None:
    """What api_key_identity read for this key in the last few seconds, without a database trip."""
    cached = _key_limits.get(token_hash(plaintext))
    if cached and time.monotonic() - cached[0] < KEY_LIMIT_TTL_SECONDS:
        return cached[1], cached[2]
    return None


def api_key_identity(*, db_session: Session, plaintext: str) -> tuple[int, int | None]:
    """The key's id and its own limit (None: the default), remembered for a few seconds."""
    digest = token_hash(plaintext)
    row = db_session.exec(
        select(ApiKey.id, ApiKeyRateLimit.requests_per_minute)
        .join(ApiKeyRateLimit, ApiKeyRateLimit.api_key_id == ApiKey.id, isouter=True)
        .where(ApiKey.key_hash == digest)
    ).first()
    if row is None:
        raise NotFound("Unknown API key.")
    _key_limits[digest] = (time.monotonic(), row[0], row[1])
    return row[0], row[1]


def set_api_key_limit(*, db_session: Session, actor: User, key_id: int, requests_per_minute: int | None) -> None:
    """An admin sets one key's limit; None returns it to STRATA_RATE_LIMIT_PER_MINUTE."""
    require_role(actor, Role.admin)
    if db_session.get(ApiKey, key_id) is None:
        raise NotFound(f"No API key with id {key_id}.")
    if requests_per_minute is not None and not 1 <= requests_per_minute <= MAX_REQUESTS_PER_MINUTE:
        raise InvalidInput(f"A rate limit is 1 to {MAX_REQUESTS_PER_MINUTE} requests a minute.")
    override = db_session.get(ApiKeyRateLimit, key_id)
    if requests_per_minute is None:
        if override is not None:
            db_session.delete(override)
    else:
        override = override or ApiKeyRateLimit(api_key_id=key_id, requests_per_minute=requests_per_minute)
        override.requests_per_minute = requests_per_minute
        db_session.add(override)
    _key_limits.clear()
    audit.info("api_key.rate_limit_set", api_key_id=key_id, requests_per_minute=requests_per_minute)
