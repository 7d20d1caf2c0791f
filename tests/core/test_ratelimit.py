"""The token bucket behind every rate-limited route, against a real Valkey."""

import pytest

from app.core import ratelimit
from app.core.clients import reset_loop_redis
from app.core.errors import TooManyAttempts


@pytest.fixture
def clean_redis(redis_url):
    reset_loop_redis()
    yield redis_url
    reset_loop_redis()


async def test_a_full_bucket_allows_the_limit_then_says_when_to_retry(clean_redis):
    for _ in range(4):
        await ratelimit.take_token("user:1", 4)
    with pytest.raises(TooManyAttempts) as refused:
        await ratelimit.take_token("user:1", 4)
    # 4 a minute: one token comes back every 15 s.
    assert 14 <= refused.value.retry_after_seconds <= 15
    assert "4 requests a minute" in refused.value.message


async def test_each_caller_has_its_own_bucket(clean_redis):
    await ratelimit.take_token("key:1", 1)
    await ratelimit.take_token("key:2", 1)
    await ratelimit.take_token("user:1", 1)
    with pytest.raises(TooManyAttempts):
        await ratelimit.take_token("key:1", 1)


async def test_a_higher_limit_lets_more_through(clean_redis):
    for _ in range(120):
        await ratelimit.take_token("user:9", 120)
    with pytest.raises(TooManyAttempts) as refused:
        await ratelimit.take_token("user:9", 120)
    assert refused.value.retry_after_seconds == 1


async def test_requests_are_not_limited_while_redis_is_down(clean_redis, valkey_server):
    valkey_server.stop()
    try:
        for _ in range(5):
            await ratelimit.take_token("user:1", 1)
    finally:
        valkey_server.start()
        reset_loop_redis()


async def test_limits_hold_when_redis_has_forgotten_the_script(clean_redis):
    import redis

    await ratelimit.take_token("user:5", 2)
    redis.Redis.from_url(clean_redis).script_flush()  # as after a Redis restart
    await ratelimit.take_token("user:5", 2)
    with pytest.raises(TooManyAttempts):
        await ratelimit.take_token("user:5", 2)
