"""The limits behind every rate-limited route and handler, against a real Valkey: the token
bucket, the per-user cap on answers written at once, and both while Valkey is down."""

import asyncio
import os
import subprocess
import sys

import pytest

from app.core import ratelimit
from app.core.clients import reset_loop_redis
from app.core.errors import TooManyAttempts
from app.core.settings import get_settings
from tests.conftest import REPO


@pytest.fixture
def clean_redis(redis_url):
    reset_loop_redis()
    ratelimit._local_buckets.clear()
    yield redis_url
    reset_loop_redis()


@pytest.fixture
def redis_down(clean_redis, valkey_server):
    """Valkey stopped for one test, as when the Redis server dies; started again after it."""
    valkey_server.stop()
    reset_loop_redis()
    yield
    valkey_server.start()
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


async def test_the_limit_still_bites_while_redis_is_down(redis_down):
    for _ in range(3):
        await ratelimit.take_token("user:1", 3)
    with pytest.raises(TooManyAttempts) as refused:
        await ratelimit.take_token("user:1", 3)
    assert 19 <= refused.value.retry_after_seconds <= 20 and "3 requests a minute" in refused.value.message
    await ratelimit.take_token("user:2", 3)  # others keep their own bucket


async def test_limits_hold_when_redis_has_forgotten_the_script(clean_redis):
    import redis

    await ratelimit.take_token("user:5", 2)
    redis.Redis.from_url(clean_redis).script_flush()  # as after a Redis restart
    await ratelimit.take_token("user:5", 2)
    with pytest.raises(TooManyAttempts):
        await ratelimit.take_token("user:5", 2)


# ------------------------------------------------------------------ answers at once


@pytest.fixture
def two_streams(monkeypatch):
    monkeypatch.setattr(get_settings(), "max_streams_per_user", 2)


async def _refused_slot(user_id: int) -> TooManyAttempts:
    with pytest.raises(TooManyAttempts) as refused:
        async with ratelimit.stream_slot(user_id):
            pass
    return refused.value


async def test_a_third_answer_at_once_is_refused_until_one_ends(clean_redis, two_streams):
    async with ratelimit.stream_slot(1), ratelimit.stream_slot(1):
        refused = await _refused_slot(1)
        assert refused.status_code == 429 and refused.retry_after_seconds >= 1
        assert "2 answers being written" in refused.message
        async with ratelimit.stream_slot(2):  # another user is not affected
            pass
    async with ratelimit.stream_slot(1), ratelimit.stream_slot(1):
        pass


async def test_a_cancelled_or_failed_answer_gives_its_slot_back(clean_redis, two_streams):
    started = asyncio.Event()

    async def answer_forever():
        async with ratelimit.stream_slot(1):
            started.set()
            await asyncio.Event().wait()

    tasks = [asyncio.create_task(answer_forever()) for _ in range(2)]
    await started.wait()
    await asyncio.sleep(0)
    await _refused_slot(1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*ratelimit._releases)

    with pytest.raises(RuntimeError):
        async with ratelimit.stream_slot(1):
            raise RuntimeError("the generator broke")
    async with ratelimit.stream_slot(1), ratelimit.stream_slot(1):
        pass


def _other_replica_takes_a_slot(user_id: int) -> str:
    """Another web process on the same Redis tries to start an answer for the user."""
    code = (
        "import asyncio\n"
        "from app.core import ratelimit\n"
        "from app.core.errors import TooManyAttempts\n"
        "async def main():\n"
        f"    async with ratelimit.stream_slot({user_id}):\n"
        "        print('taken')\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except TooManyAttempts:\n"
        "    print('refused')\n"
    )
    env = {**os.environ, "STRATA_MAX_STREAMS_PER_USER": "2"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def test_web_replicas_share_the_cap_through_redis(clean_redis, two_streams):
    async with ratelimit.stream_slot(7):
        async with ratelimit.stream_slot(7):
            assert await asyncio.to_thread(_other_replica_takes_a_slot, 7) == "refused"
        assert await asyncio.to_thread(_other_replica_takes_a_slot, 7) == "taken"


async def test_the_cap_still_holds_while_redis_is_down(redis_down, two_streams):
    async with ratelimit.stream_slot(1), ratelimit.stream_slot(1):
        await _refused_slot(1)
    async with ratelimit.stream_slot(1), ratelimit.stream_slot(1):
        pass
    assert ratelimit._local_slots == {}
