"""`strata migrate` without losing anything: a backup before new migrations are applied, and a
database left as it was when one fails.

PostgreSQL runs every pending migration in one transaction (Alembic's transactional DDL), so
a failure rolls all of them back. SQLite cannot: Python's sqlite3 commits DDL outside of
transactions and Alembic's batch mode rebuilds tables, so the file is copied (SQLite's
online backup API) before the upgrade and copied back when it fails."""

from dataclasses import dataclass

from app.backup import backup_and_restore as backup
from app.backup import database as backup_database
from app.core import migrations
from app.core.db import get_engine
from app.core.errors import StrataError
from app.core.settings import Settings
from app.core.time import utcnow


class MigrationFailed(StrataError):
    status_code = 500


@dataclass(frozen=True)
class UpgradeResult:
    before: str | None
    after: str | None
    backup_key: str | None


def pre_migrate_backup(settings: Settings, revision: str) -> str:
    """The backup before an upgrade (the database and the stored files: what a migration may
    change), stored under backups/; returns its key."""
    name = f"pre-migrate-{revision}-{utcnow():%Y%m%dT%H%M%SZ}.tar.gz"
    with backup.work_dir(settings) as scratch:
        backup.create_backup(scratch / name, settings=settings, database_and_files_only=True)
        key = f"{backup.BACKUP_AREA}/{name}"
        backup.get_files(settings).save(key, scratch / name)
    return key


def how_to_restore(settings: Settings, key: str | None) -> str:
    if key is None:
        return "No backup was taken (STRATA_BACKUP_BEFORE_MIGRATE=false)."
    # Named, not fetched: an S3 store may not answer now, and its copy would be GBs.
    where = f"{settings.storage_url.rstrip('/')}/{key}" if settings.storage_url else settings.resolved_files_dir / key
    return (
        f"The backup taken before it is {key} in the file store ({where}); restore it with "
        f"`strata restore <that file> --force` after installing the previous release again."
    )


def upgrade(settings: Settings, *, log=print) -> UpgradeResult:
    engine = get_engine()
    before = migrations.current_revision(engine)
    head = migrations.head_revision()
    if before == head:
        return UpgradeResult(before, before, None)
    key = None
    if before is not None and settings.backup_before_migrate:
        log(f"Backing up before migrating from {before} to {head}…")
        try:
            key = pre_migrate_backup(settings, before)
        except (StrataError, OSError) as exc:  # the file store down, the disk full
            reason = exc.message if isinstance(exc, StrataError) else f"{type(exc).__name__}: {exc}"
            raise MigrationFailed(
                f"The backup before migrating from {before} to {head} failed ({reason}). "
                f"Nothing was migrated: the database is still at revision {before}. Free disk space or bring "
                "the file store back and run it again, or set STRATA_BACKUP_BEFORE_MIGRATE=false to migrate "
                "without a backup."
            ) from exc
        log(f"Backup written: {key}")
    sqlite_file = backup_database.sqlite_file(settings.effective_database_url) if before is not None else None
    safety_copy = sqlite_file.with_name(sqlite_file.name + ".pre-migrate") if sqlite_file else None
    if safety_copy:
        backup_database.copy_sqlite(sqlite_file, safety_copy)
    try:
        migrations.upgrade()
    except Exception as exc:
        engine.dispose()
        if safety_copy:
            backup_database.copy_sqlite(safety_copy, sqlite_file)
        now = migrations.current_revision(engine)
        raise MigrationFailed(
            f"Migrating from {before} to {head} failed ({type(exc).__name__}: {exc}). "
            f"The database was left as it was, at revision {now}. {how_to_restore(settings, key)}"
        ) from exc
    finally:
        if safety_copy:
            safety_copy.unlink(missing_ok=True)
    return UpgradeResult(before, migrations.current_revision(engine), key)
