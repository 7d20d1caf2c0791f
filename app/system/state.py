import asyncio
import time
from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState
from app.auth.tables import Role
from app.core.errors import StrataError
from app.core.time import utcnow
from app.system.service import system_health

REFRESH_SECONDS = 2.0
# Live updates pause after this long so a forgotten tab does not poll forever.
WATCH_LIMIT_SECONDS = 30 * 60


@dataclass
class ComponentView:
    name: str
    ok: bool
    error: str
    details: list[list[str]]


class SystemState(AuthState):
    components: list[ComponentView] = []
    checked_at: str = ""
    watching: bool = False

    @rx.var
    def all_ok(self) -> bool:
        return bool(self.components) and all(component.ok for component in self.components)

    @rx.event(background=True)
    async def watch(self):
        async with self:
            if self.watching:
                return
            self.watching = True
        started = time.monotonic()
        try:
            while time.monotonic() - started < WATCH_LIMIT_SECONDS:
                async with self:
                    if not self.watching:
                        return
                    try:
                        await self._require(Role.staff)
                    except StrataError:
                        return
                components = await system_health()
                async with self:
                    self.components = [
                        ComponentView(c.name, c.ok, c.error, [[k, v] for k, v in c.details.items()])
                        for c in components
                    ]
                    self.checked_at = f"{utcnow():%H:%M:%S} UTC"
                await asyncio.sleep(REFRESH_SECONDS)
        finally:
            async with self:
                self.watching = False

    @rx.event
    def stop_watching(self):
        self.watching = False
