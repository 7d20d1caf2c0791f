from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from fastapi import APIRouter, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from app.auth.deps import AdminUser, SettingsDep
from app.backup import service as backup_service
from app.jobs_board.schemas import JobOut

router = APIRouter(prefix="/api/v1", tags=["system"])

# An archive downloads as a file and is never rendered or sniffed by the browser.
DOWNLOAD_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "Cache-Control": "no-store",
}
DOWNLOAD_CHUNK_BYTES = 1024 * 1024


class BackupOut(BaseModel):
    name: str
    size_bytes: int
    written_at: datetime | None


@router.post("/system/backups", status_code=status.HTTP_202_ACCEPTED)
async def start_backup(user: AdminUser) -> JobOut:
    """Starts a backup as a background job (admins); follow it at /api/v1/jobs/{id}."""
    return JobOut.of(await backup_service.start_backup(actor=user))


@router.get("/system/backups")
def list_backups(user: AdminUser, settings: SettingsDep) -> list[BackupOut]:
    """The archives in the file store's backups/ folder, newest first (admins)."""
    return [
        BackupOut(name=item.name, size_bytes=item.size_bytes, written_at=item.written_at)
        for item in backup_service.list_backups(actor=user, settings=settings)
    ]


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    try:
        while chunk := stream.read(DOWNLOAD_CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()


@router.get(
    "/system/backups/{name}",
    response_class=StreamingResponse,
    responses={200: {"description": "The archive", "content": {"application/gzip": {}}}},
)
def download_backup(name: str, user: AdminUser, settings: SettingsDep) -> StreamingResponse:
    """One archive, as an attachment (admins): it holds every user's data."""
    stream, size = backup_service.open_backup(actor=user, settings=settings, name=name)
    return StreamingResponse(
        _chunks(stream),
        media_type="application/gzip",
        headers={
            **DOWNLOAD_HEADERS,
            "Content-Disposition": f'attachment; filename="{name}"',
            "Content-Length": str(size),
        },
    )
