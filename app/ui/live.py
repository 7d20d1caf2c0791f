"""Live pages: a background event refreshes a page's data while the page is open."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from app.auth.state import AuthState, acting_as
from app.core.errors import StrataError
from app.core.roles import Role

# Live updates pause after this long so a forgotten tab does not poll forever.
WATCH_LIMIT_SECONDS = 30 * 60


async def refresh_while_open(
    state: AuthState, minimum: Role, refresh: Callable[[], Awaitable[None]], interval: float
) -> None:
    """The body of a page state's background `watch` event. The state has a `watching`
    var that its `stop_watching` event (on unmount) clears. The role is checked again
    before every refresh, so a user demoted or signed out meanwhile stops receiving data;
    refresh() runs as that user (acting_user())."""
    async with state:
        if state.watching:
            return
        state.watching = True
    started = time.monotonic()
    try:
        while time.monotonic() - started < WATCH_LIMIT_SECONDS:
            async with state:
                if not state.watching:
                    return
                try:
                    user = await state._require(minimum)
                except StrataError:
                    return
            with acting_as(user):
                await refresh()
            await asyncio.sleep(interval)
    finally:
        async with state:
            state.watching = False
