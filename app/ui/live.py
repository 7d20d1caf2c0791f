"""Live pages: a background event refreshes a page's data while the page is open."""

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from app.auth.state import AuthState, acting_as
from app.core.errors import Forbidden, Unauthorized
from app.core.roles import Role

log = structlog.get_logger("strata.ui")

# Live updates pause after this long so a forgotten tab does not poll forever.
WATCH_LIMIT_SECONDS = 30 * 60


async def refresh_while_open(
    state: AuthState, minimum: Role, refresh: Callable[[], Awaitable[None]], interval: float
) -> None:
    """The body of a page state's background `watch` event. The state has a `watching`
    var that its `stop_watching` event (on unmount) clears. The role is checked again
    before every refresh, so a user demoted or signed out meanwhile stops receiving data;
    refresh() runs as that user (acting_user()). Any other failure (a store slow or briefly
    down) skips one refresh: the page goes on updating once it passes."""
    async with state:
        if state.watching:
            return
        state.watching = True
    started = time.monotonic()
    try:
        while time.monotonic() - started < WATCH_LIMIT_SECONDS:
            try:
                async with state:
                    if not state.watching:
                        return
                    user = await state._require(minimum)
                with acting_as(user):
                    await refresh()
            except (Unauthorized, Forbidden):
                return
            except Exception:  # noqa: BLE001 - one failed refresh must not end the page's live updates
                log.exception("live.refresh_failed", page_state=type(state).__name__)
            await asyncio.sleep(interval)
    finally:
        async with state:
            state.watching = False
