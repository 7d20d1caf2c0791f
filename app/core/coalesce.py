"""One call at a time per key: concurrent callers asking for the same thing share one answer.

When a cached value (a route, a credential) expires under load, every request that arrives
before it is read again would otherwise read the database itself: tens of identical queries
at once, all competing for the same cores, showing up as a latency spike."""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

_in_flight: dict[tuple[int, Hashable], asyncio.Future] = {}


async def shared(key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
    """`await make()`, unless a call for `key` is already running on this event loop: then its
    result (or exception). The call goes on if the caller that started it is cancelled."""
    loop = asyncio.get_running_loop()
    slot = (id(loop), key)
    running = _in_flight.get(slot)
    if running is None or running.get_loop() is not loop:
        running = _in_flight[slot] = asyncio.ensure_future(make())
        running.add_done_callback(lambda done: _in_flight.pop(slot, None) if _in_flight.get(slot) is done else None)
    return await asyncio.shield(running)
