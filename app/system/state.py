from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.core.roles import Role
from app.system.service import detailed_health
from app.system.storage import StorageReport, StoreUsage, storage_report
from app.ui.live import refresh_while_open

REFRESH_SECONDS = 2.0


@dataclass
class ComponentView:
    name: str
    ok: bool
    error: str
    details: list[list[str]]


@dataclass
class StoreView:
    name: str
    ok: bool
    error: str
    size: str
    details: list[list[str]]
    # [what, how many, its size]
    holds: list[list[str]]


@dataclass
class RetentionRunView:
    job: str
    ran_at: str
    removed: str


def human_size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return "-"
    size = float(size_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # unreachable: GB returns above


def _store_view(store: StoreUsage) -> StoreView:
    return StoreView(
        store.name,
        store.ok,
        store.error,
        human_size(store.size_bytes),
        [[key, value] for key, value in store.details.items()],
        [
            [
                item.name,
                f"{item.count:,} {item.unit}",
                human_size(item.size_bytes) if item.size_bytes is not None else "",
            ]
            for item in store.items
        ],
    )


def _runs(report: StorageReport) -> list[RetentionRunView]:
    return [
        RetentionRunView(
            run.job,
            f"{run.ran_at:%Y-%m-%d %H:%M} UTC ({run.seconds:.1f} s)",
            ", ".join(
                f"{human_size(count)} freed" if what.endswith("bytes") else f"{count:,} {what}"
                for what, count in run.removed.items()
            ),
        )
        for run in report.retention_runs
    ]


class SystemState(AuthState):
    components: list[ComponentView] = []
    checked_at: str = ""
    watching: bool = False
    # The Storage section (admins): gathered when it opens and on Refresh, not on every tick.
    stores: list[StoreView] = []
    retention_policy: list[list[str]] = []
    retention_runs: list[RetentionRunView] = []
    retention_error: str = ""
    storage_checked_at: str = ""
    storage_loading: bool = False

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

    @rx.event(background=True)
    @guarded(Role.admin, background=True)
    async def load_storage(self):
        async with self:
            if self.storage_loading:
                return
            self.storage_loading = True
        try:
            report = await storage_report(actor=acting_user())
        finally:
            async with self:
                self.storage_loading = False
        async with self:
            self.stores = [_store_view(store) for store in report.stores]
            self.retention_policy = [[what, keep] for what, keep in report.retention_policy.items()]
            self.retention_runs = _runs(report)
            self.retention_error = report.retention_error
            self.storage_checked_at = f"{report.checked_at:%H:%M:%S} UTC"
