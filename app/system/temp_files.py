"""Temporary files past STRATA_TEMP_FILE_RETENTION_HOURS, removed by the retention sweep
(app/system/retention_jobs.py). Each is scratch that a request, job or process died holding:

- uploads being received (app/core/uploads.py: incoming_dir), Reflex's own upload folder and an
  S3 store's upload spool, all local to the machine that received them;
- half-written saves of the files store (`.strata-tmp-*` beside their key, app/core/storage.py);
- a backup's scratch folder (app/backup/backup_and_restore.py: work_dir, <data dir>/run/backup-*) whose job
  was killed before its temporary folder was removed;
- a batch job's work: its local folder (app/batch/running.py: work_dir) and its stored keys
  batch/<job id>/..., both removed with the job's outcome. Those of a job that finished before
  the cutoff, or whose row is gone, were left by a worker that died; a queued or running job
  keeps them however old.

Files in use are newer than the cutoff: receiving an upload or saving a key writes as it goes.
Local scratch is pruned on the machine the sweep runs on; arq hands each hour's sweep to any
worker, so over the hours every worker machine's."""

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session, col

from app.batch.running import job_prefix, work_dir
from app.core.settings import Settings
from app.core.storage import KEY_AREAS, TEMP_PREFIX, get_storage
from app.core.time import as_utc
from app.core.uploads import incoming_dir
from jobs.tables import Job, JobStatus

# Relative to the data dir: Reflex's uploads (STRATA's runner sets REFLEX_UPLOADED_FILES_DIR) and
# the S3 backend's spool of streams being uploaded.
REFLEX_UPLOADS = "uploaded_files"
S3_SPOOL = "cache/storage/spool"
BATCH_AREA = "batch"
# app/backup/backup_and_restore.py's work_dir: tempfile folders named backup-* in <data dir>/run.
BACKUP_SCRATCH = ("run", "backup-*")


@dataclass
class Removed:
    files: int = 0
    bytes: int = 0

    def unlink(self, path: Path) -> None:
        try:
            size = path.lstat().st_size
            path.unlink()
        except FileNotFoundError:
            return  # removed meanwhile by the request or job that owned it
        self.files += 1
        self.bytes += size


def _receiving_dirs(settings: Settings) -> list[Path]:
    data = settings.resolved_data_dir
    # incoming_dir has one folder per area (datasets, knowledge, ...) under one root.
    return [data / REFLEX_UPLOADS, incoming_dir(settings, "datasets").parent, data / S3_SPOOL]


def _batch_root(settings: Settings) -> Path:
    return work_dir(settings, "job").parent


def _backup_scratch(settings: Settings) -> list[Path]:
    folder, pattern = BACKUP_SCRATCH
    return [p for p in (settings.resolved_data_dir / folder).glob(pattern) if p.is_dir() and not p.is_symlink()]


def local_scratch_dirs(settings: Settings) -> list[Path]:
    """This machine's scratch folders: what the System page counts as "temp"."""
    return [*_receiving_dirs(settings), _batch_root(settings), *_backup_scratch(settings)]


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return None  # removed meanwhile


def _files(root: Path, pattern: str = "*") -> list[Path]:
    return [path for path in root.rglob(pattern) if path.is_file() and not path.is_symlink()]


def _prune_old_files(root: Path, cutoff: float, removed: Removed, pattern: str = "*") -> None:
    for path in _files(root, pattern):
        moment = _mtime(path)
        if moment is not None and moment < cutoff:
            removed.unlink(path)


def _prune_backup_scratch(settings: Settings, cutoff: float, removed: Removed) -> None:
    """A backup writes its scratch as it goes: a folder with no file written since `cutoff` is
    one whose job was killed."""
    for folder in _backup_scratch(settings):
        times = [moment for path in _files(folder) if (moment := _mtime(path)) is not None]
        if max(times, default=_mtime(folder) or 0.0) < cutoff:
            for path in _files(folder):
                removed.unlink(path)
            shutil.rmtree(folder, ignore_errors=True)


def _jobs_holding_work(db_session: Session, job_ids: set[str], cutoff: datetime) -> set[str]:
    """Of `job_ids`, those whose batch work must stay: queued, running, or finished after `cutoff`."""
    if not job_ids:
        return set()
    rows = db_session.execute(select(Job.id, Job.status, Job.finished_at).where(col(Job.id).in_(job_ids))).all()
    return {
        job_id
        for job_id, status, finished_at in rows
        if not JobStatus(status).finished or finished_at is None or as_utc(finished_at) >= cutoff
    }


def _prune_batch_work(db_session: Session, settings: Settings, cutoff: datetime, removed: Removed) -> None:
    root = _batch_root(settings)
    folders = {p.name: p for p in root.iterdir() if p.is_dir() and not p.is_symlink()} if root.is_dir() else {}
    storage = get_storage()
    stored: dict[str, list[int]] = {}
    for key, size in storage.iter_keys(BATCH_AREA):
        stored.setdefault(key.split("/")[1], []).append(size)
    keep = _jobs_holding_work(db_session, set(folders) | set(stored), cutoff)
    for job_id, folder in folders.items():
        if job_id not in keep:
            for path in _files(folder):
                removed.unlink(path)
            shutil.rmtree(folder, ignore_errors=True)
    for job_id, sizes in stored.items():
        if job_id not in keep:
            removed.files += storage.delete_prefix(job_prefix(job_id))
            removed.bytes += sum(sizes)


def prune_temp_files(*, db_session: Session, settings: Settings, cutoff: datetime) -> Removed:
    """Removes the temporary files written before `cutoff`; returns how many and their bytes."""
    moment = cutoff.timestamp()
    removed = Removed()
    # Files only: an empty folder costs nothing, and removing one could race an upload creating it.
    for root in _receiving_dirs(settings):
        _prune_old_files(root, moment, removed)
    if not settings.storage_url:
        for area in KEY_AREAS:
            _prune_old_files(settings.resolved_files_dir / area, moment, removed, f"{TEMP_PREFIX}*")
    _prune_backup_scratch(settings, moment, removed)
    _prune_batch_work(db_session, settings, cutoff, removed)
    return removed
