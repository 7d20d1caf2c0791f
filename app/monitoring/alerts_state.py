"""The Monitoring page's alerts panel: open alerts, each with an Acknowledge button. Staff
only, like the page (the Home page shows open alerts read-only through its own state)."""

from dataclasses import dataclass

import reflex as rx

from app.alerts import service
from app.alerts.schemas import AlertOut
from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.roles import Role

KIND_TITLES = {"drift": "Drift", "accuracy": "Accuracy", "error_rate": "Error rate"}


@dataclass
class AlertRow:
    id: int
    model: str
    version: str
    kind: str
    statistic: str
    value: str
    threshold: str
    message: str
    opened: str
    last_seen: str


def _row(alert: AlertOut) -> AlertRow:
    return AlertRow(
        id=alert.id,
        model=alert.model,
        version=f"v{alert.version}" if alert.version is not None else "",
        kind=KIND_TITLES.get(alert.kind, alert.kind),
        statistic=alert.statistic,
        value=f"{alert.value:.4g}",
        threshold=f"{alert.threshold:.4g}",
        message=alert.message,
        opened=f"{alert.opened_at:%Y-%m-%d %H:%M} UTC",
        last_seen=f"{alert.last_seen_at:%Y-%m-%d %H:%M} UTC",
    )


class AlertsState(AuthState):
    open_alerts: list[AlertRow] = []

    async def _reload(self) -> None:
        alerts = await run_in_session(service.list_alerts, actor=acting_user(), open_only=True)
        self.open_alerts = [_row(alert) for alert in alerts]

    @rx.event
    @guarded(Role.staff)
    async def load(self):
        await self._reload()

    @rx.event
    @guarded(Role.staff)
    async def acknowledge(self, alert_id: int):
        try:
            alert = await run_in_session(service.acknowledge, actor=acting_user(), alert_id=int(alert_id))
        finally:
            # Someone else may have acknowledged it meanwhile: show what is open now.
            await self._reload()
        return rx.toast.success(
            f"Acknowledged the {KIND_TITLES.get(alert.kind, alert.kind).lower()} alert on {alert.model}."
        )
