import asyncio
from dataclasses import dataclass

import reflex as rx

from app.auth.state import AuthState, acting_user, guarded
from app.backup import service as backup_service
from app.core.db import run_in_session
from app.core.roles import Role
from app.core.settings import get_settings
from app.ui.live import refresh_while_open

REFRESH_SECONDS = 2.0


@dataclass
class BackupRow:
    name: str
    size: str
    written_at: str
    url: str


def _rows(actor) -> list[BackupRow]:
    return [
        BackupRow(
            name=item.name,
            size=f"{item.size_bytes / 1e6:.1f} MB",
            written_at=f"{item.written_at:%Y-%m-%d %H:%M:%S} UTC" if item.written_at else "",
            url=f"/api/v1/system/backups/{item.name}",
        )
        for item in backup_service.list_backups(actor=actor, settings=get_settings())
    ]


class BackupState(AuthState):
    """The System page's backup panel (admins): start a backup, follow it, download archives."""

    backups: list[BackupRow] = []
    job_status: str = ""
    job_progress: int = 0
    job_message: str = ""
    watching: bool = False

    @rx.var
    def running(self) -> bool:
        return self.job_status in ("queued", "running")

    async def _load(self) -> None:
        actor = acting_user()
        rows = await asyncio.to_thread(_rows, actor)  # the file store may be S3: off the event loop
        job = await run_in_session(backup_service.latest_backup_job, actor=actor)
        async with self:
            self.backups = rows
            self._show(job)

    def _show(self, job) -> None:
        if job is None:
            self.job_status, self.job_progress, self.job_message = "", 0, ""
            return
        self.job_status = job.status
        self.job_progress = round(job.progress * 100)
        self.job_message = job.error or job.message

    @rx.event
    @guarded(Role.admin)
    async def back_up_now(self):
        job = await backup_service.start_backup(actor=acting_user())
        self._show(job)
        return rx.toast.info("Backup started; it runs in the background.")

    @rx.event(background=True)
    async def watch(self):
        await refresh_while_open(self, Role.admin, self._load, REFRESH_SECONDS)

    @rx.event
    def stop_watching(self):
        self.watching = False
