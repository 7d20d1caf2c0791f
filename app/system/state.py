from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState, acting_user
from app.core.roles import Role
from app.system.service import detailed_health
from app.ui.live import refresh_while_open

REFRESH_SECONDS = 2.0


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
        await refresh_while_open(self, Role.staff, self._refresh, REFRESH_SECONDS)

    async def _refresh(self) -> None:
        report = await detailed_health(actor=acting_user())
        async with self:
            self.components = [
                ComponentView(c.name, c.ok, c.error, [[k, v] for k, v in c.details.items()]) for c in report.components
            ]
            self.checked_at = f"{report.checked_at:%H:%M:%S} UTC"

    @rx.event
    def stop_watching(self):
        self.watching = False
