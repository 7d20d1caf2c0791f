"""Backups from the System page: an admin starts one as a background job, watches it, lists
the archives in the file store's backups/ folder and downloads one. Admins only: an archive
holds every user's data and the password hashes."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO

from sqlmodel import Session, col, select

from app.backup import backup_and_restore as backup
from app.core.db import run_in_session
from app.core.errors import Conflict, NotFound
from app.core.roles import Actor, Role, require_role
from app.core.settings import Settings
from app.core.time import utcnow
from jobs import service as jobs_service
from jobs.tables import Job, JobStatus

BACKUP_NOW = "backup"
# Names the job and `strata migrate` give their archives; nothing else is offered for download.
ARCHIVE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}\.tar\.gz$")
WRITTEN_AT = re.compile(r"(\d{8}T\d{6})\d*Z")


@dataclass(frozen=True)
class BackupFile:
    name: str
    size_bytes: int
    written_at: datetime | None


def archive_name() -> str:
    return f"strata-{utcnow():%Y%m%dT%H%M%S%fZ}.tar.gz"


def write_backup(*, settings: Settings, on_progress) -> dict:
    """The job's work: the archive is written in scratch space and then stored under backups/."""
    name = archive_name()
    with backup.work_dir(settings) as scratch:
        summary = backup.create_backup(scratch / name, settings=settings, on_progress=on_progress)
        backup.get_files(settings).save(f"{backup.BACKUP_AREA}/{name}", scratch / name)
    return {
        "name": name,
        "size_bytes": summary.size_bytes,
        "revision": summary.revision,
        "rows": sum(summary.tables.values()),
        "files": summary.files,
        "vectors": sum(summary.vectors.values()),
    }


async def start_backup(*, actor: Actor) -> Job:
    """One at a time: each reads every table and file, on the machine's few cores."""
    require_role(actor, Role.admin)
    latest = await run_in_session(latest_backup_job, actor=actor)
    if latest is not None and latest.status in (JobStatus.queued, JobStatus.running):
        raise Conflict("A backup is already being written; wait for it to finish.")
    return await jobs_service.enqueue(actor=actor, kind=BACKUP_NOW, params={}, max_attempts=1)


def latest_backup_job(*, db_session: Session, actor: Actor) -> Job | None:
    require_role(actor, Role.admin)
    return db_session.exec(select(Job).where(Job.kind == BACKUP_NOW).order_by(col(Job.created_at).desc())).first()


def _written_at(name: str) -> datetime | None:
    """From the name: object stores give no modification time through the storage interface."""
    stamp = WRITTEN_AT.search(name)
    return datetime.strptime(stamp.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC) if stamp else None


def list_backups(*, actor: Actor, settings: Settings) -> list[BackupFile]:
    """Newest first."""
    require_role(actor, Role.admin)
    found = []
    for key, size in backup.get_files(settings).iter_keys(backup.BACKUP_AREA):
        name = key.removeprefix(f"{backup.BACKUP_AREA}/")
        if ARCHIVE_NAME.match(name):
            found.append(BackupFile(name, size, _written_at(name)))
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(found, key=lambda item: item.written_at or oldest, reverse=True)


def open_backup(*, actor: Actor, settings: Settings, name: str) -> tuple[BinaryIO, int]:
    """A read stream of the archive and its size. Read from the store as it is sent: an S3
    store's local copy (local_path) would be fetched whole before the first byte and kept."""
    require_role(actor, Role.admin)
    key = f"{backup.BACKUP_AREA}/{name}"
    files = backup.get_files(settings)
    sizes = dict(files.iter_keys(backup.BACKUP_AREA)) if ARCHIVE_NAME.match(name) else {}
    if key not in sizes:
        raise NotFound(f"No backup named {name!r}.")
    return files.open(key), sizes[key]
