"""Concurrent requests for the same expired value read it once."""

import asyncio

import pytest

from app.core import coalesce


async def test_concurrent_callers_of_one_key_share_one_call_and_other_keys_run_their_own():
    calls: list[str] = []

    async def read(what: str) -> str:
        calls.append(what)
        await asyncio.sleep(0.05)
        return f"{what} from the database"

    answers = await asyncio.gather(
        *(coalesce.shared(("route", "m"), lambda: read("m")) for _ in range(20)),
        coalesce.shared(("route", "other"), lambda: read("other")),
    )
    assert answers == ["m from the database"] * 20 + ["other from the database"]
    assert sorted(calls) == ["m", "other"]
    # Once answered, the next caller reads again (the value's freshness is its cache's business).
    await coalesce.shared(("route", "m"), lambda: read("m"))
    assert calls.count("m") == 2


async def test_every_waiting_caller_gets_the_error_and_a_cancelled_caller_does_not_stop_the_call():
    started = asyncio.Event()
    finished: list[bool] = []

    async def failing() -> None:
        started.set()
        await asyncio.sleep(0.05)
        finished.append(True)
        raise LookupError("no such credential")

    first = asyncio.ensure_future(coalesce.shared("credential", failing))
    await started.wait()
    second = asyncio.ensure_future(coalesce.shared("credential", failing))
    first.cancel()
    with pytest.raises(LookupError, match="no such credential"):
        await second
    assert finished == [True]
