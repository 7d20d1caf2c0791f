"""`strata backup` and `strata restore`: one archive of everything that matters (the database,
the stored files, the built models, the Chroma collections, the settings that are not
secrets), taken while Strata serves, and restored into an empty Strata.

Archive layout (see archive.py for the checks):
    database/<table>.jsonl   every row, from one snapshot (database.py)
    files/<key>              stored files: documents, dataset versions, registry artifacts, batch work
    models/<path>            the built ONNX models (STRATA_MODELS_DIR)
    chroma/<name>.jsonl      each collection's vectors (vectors.py)
    settings.json            the non-secret settings, for reference; restore does not apply them
    manifest.json            versions, row counts, sizes and sha256 of every member"""

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from alembic import command
from app.backup import database as backup_database
from app.backup import vectors as backup_vectors
from app.backup.archive import ArchiveWriter, BadArchive, extract_to, verify
from app.core import migrations
from app.core.db import make_engine
from app.core.errors import Conflict, InvalidInput
from app.core.security import redact_credentials
from app.core.settings import Settings
from app.core.storage import Storage, StorageKeyMissing, storage_from_settings
from app.core.time import utcnow

Progress = Callable[[float, str], None]
FILE_AREAS = ("knowledge", "datasets", "predict", "batch")
BACKUP_AREA = "backups"
# Settings whose names hold one of these words are left out of settings.json (secret_key,
# admin_password, oidc_client_secret, llm_api_key, metrics_token, s3_secret_access_key, ... and
# any added later).
SECRET_WORDS = {"secret", "password", "token", "key"}
URL_SETTINGS = {"database_url", "redis_url", "chroma_url", "llm_base_url"}
# Built-in registry versions (and those registered before the file store) name their artifact
# by absolute path into the models or data dir (app/predict/artifacts.py).
ARTIFACT_COLUMN = ("model_version", "artifact")


def get_files(settings: Settings) -> Storage:
    """The file store of these settings (a restore may target another install than the process's)."""
    return storage_from_settings(settings)


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    size_bytes: int
    revision: str | None
    tables: dict[str, int]
    files: int
    models: int
    vectors: dict[str, int]


def strata_version() -> str:
    return importlib.metadata.version("strata")


def public_settings(settings: Settings) -> dict[str, Any]:
    secret = {name for name in type(settings).model_fields if SECRET_WORDS & set(name.split("_"))}
    values = settings.model_dump(mode="json", exclude=secret)
    for name in URL_SETTINGS:
        values[name] = redact_credentials(values[name])
    return values


@contextmanager
def work_dir(settings: Settings) -> Iterator[Path]:
    """Scratch space beside the data, not in /tmp, which is often a small RAM disk."""
    root = settings.resolved_data_dir / "run"
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="backup-", dir=root) as directory:
        yield Path(directory)


def _add_database(
    writer: ArchiveWriter, settings: Settings, scratch: Path, progress: Progress
) -> tuple[str, dict, list[str]]:
    """Returns the revision, each table's row count and the knowledge bases' Chroma collections."""
    engine = make_engine(settings.effective_database_url)
    try:
        connection = backup_database.snapshot(engine)
        try:
            revision = backup_database.revision(connection)
            tables = backup_database.reflect(connection)
            counts = {}
            for index, table in enumerate(tables):
                progress(0.4 * index / max(1, len(tables)), f"Copying table {table.name}")
                dumped = scratch / f"{table.name}.jsonl"
                with dumped.open("w", encoding="utf-8") as out:
                    counts[table.name] = backup_database.dump_table(connection, table, out)
                writer.add_file(f"database/{table.name}.jsonl", dumped)
                dumped.unlink()
            collections = backup_database.knowledge_collections(connection)
        finally:
            connection.close()
        return revision, counts, collections
    finally:
        engine.dispose()


def _add_files(writer: ArchiveWriter, settings: Settings) -> int:
    files = get_files(settings)
    count = 0
    for area in FILE_AREAS:
        for key, _size in files.iter_keys(area):
            try:  # opened first and measured then: a file replaced meanwhile is read whole, old or new
                with files.local_path(key).open("rb") as source:
                    writer.add_stream(f"files/{key}", source, os.fstat(source.fileno()).st_size)
            except (FileNotFoundError, StorageKeyMissing):  # deleted since it was listed, as its row will be
                continue
            count += 1
    return count


def _add_models(writer: ArchiveWriter, settings: Settings) -> int:
    """The built models, without a build's hidden work folders and lock files."""
    models_dir = settings.resolved_models_dir
    if not settings.backup_include_models or not models_dir.is_dir():
        return 0
    count = 0
    for path in sorted(models_dir.rglob("*")):
        relative = path.relative_to(models_dir)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            writer.add_file(f"models/{relative.as_posix()}", path)
            count += 1
    return count


def _add_vectors(writer: ArchiveWriter, scratch: Path, collections: list[str]) -> dict[str, int]:
    """The collections of the backed-up knowledge bases (one without documents may have none);
    others in a shared Chroma server are not Strata's, or are left over from deleted ones."""
    counts = {}
    for name in sorted(set(collections) & set(backup_vectors.collection_names())):
        exported = scratch / f"{name}.jsonl"
        with exported.open("w", encoding="utf-8") as out:
            counts[name] = backup_vectors.export_collection(name, out)
        writer.add_file(f"chroma/{name}.jsonl", exported)
        exported.unlink()
    return counts


def create_backup(
    path: Path, *, settings: Settings, on_progress: Progress | None = None, database_and_files_only: bool = False
) -> BackupSummary:
    """Writes the archive to `path`. The database is read from one snapshot that blocks no
    writer; files and vectors are read after it, so everything its rows point to is there.
    `database_and_files_only` leaves out the models and vectors, which no migration changes
    (and the embedded Chroma is not running yet when `strata run` migrates)."""
    report = on_progress or (lambda fraction, message: None)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = ArchiveWriter(path)
    try:
        with work_dir(settings) as scratch:
            revision, tables, collections = _add_database(writer, settings, scratch, report)
            report(0.4, "Copying stored files")
            files = _add_files(writer, settings)
            models, vectors = 0, {}
            if not database_and_files_only:
                report(0.6, "Copying models")
                models = _add_models(writer, settings)
                report(0.8, "Copying vectors")
                vectors = _add_vectors(writer, scratch, collections)
            writer.add_json("settings.json", public_settings(settings))
            size = writer.finish(
                {
                    "strata_version": strata_version(),
                    "alembic_revision": revision,
                    "created_at": utcnow().isoformat(),
                    "database": {"dialect": settings.effective_database_url.split(":", 1)[0], "tables": tables},
                    "source": {
                        "data_dir": str(settings.resolved_data_dir),
                        "models_dir": str(settings.resolved_models_dir),
                    },
                    "vectors": vectors,
                }
            )
    except BaseException:
        writer.abandon()
        raise
    report(1.0, "Backup written")
    return BackupSummary(path, size, revision, tables, files, models, vectors)


@dataclass(frozen=True)
class RestoreSummary:
    revision: str | None
    rows: int
    files: int
    models: int
    vectors: dict[str, int]


def _members(manifest: dict, prefix: str) -> list[str]:
    return sorted(name.removeprefix(prefix) for name in manifest["members"] if name.startswith(prefix))


def _known_revision(revision: str | None) -> None:
    if revision is None:
        return
    try:
        found = ScriptDirectory.from_config(migrations.alembic_config()).get_revision(revision)
    except (CommandError, RevisionError):
        found = None
    if found is None:
        raise BadArchive(
            f"The backup's database is at migration {revision}, which this Strata does not know: "
            "it was made by a newer release. Restore it with that release or a later one. Nothing was changed."
        )


def _occupied(settings: Settings, manifest: dict) -> list[str]:
    """What in the target a restore would overwrite."""
    found = []
    engine = make_engine(settings.effective_database_url)
    try:
        with engine.connect() as connection:
            rows = sum(backup_database.row_counts(connection).values())
    finally:
        engine.dispose()
    if rows:
        found.append(f"the database holds {rows} rows")
    files = get_files(settings)
    stored = sum(1 for area in FILE_AREAS for _ in files.iter_keys(area))
    if stored:
        found.append(f"the file store holds {stored} files")
    # Only asked when the archive has vectors: a pre-migrate backup restores without Chroma running.
    archived = {member.removesuffix(".jsonl") for member in _members(manifest, "chroma/")}
    collections = sorted(archived & set(backup_vectors.collection_names())) if archived else []
    if collections:
        found.append(f"Chroma already has the collections {', '.join(collections)}")
    models_dir = settings.resolved_models_dir
    differing = [
        name
        for name in _members(manifest, "models/")
        if (models_dir / name).exists()
        and (models_dir / name).stat().st_size != manifest["members"][f"models/{name}"]["size"]
    ]
    if differing:
        found.append(f"{models_dir} holds other versions of {', '.join(differing[:3])}")
    return found


def _clear(settings: Settings, manifest: dict) -> None:
    files = get_files(settings)
    for area in FILE_AREAS:
        files.delete_prefix(area)
    archived = {member.removesuffix(".jsonl") for member in _members(manifest, "chroma/")}
    for name in sorted(archived & set(backup_vectors.collection_names())) if archived else []:
        backup_vectors.delete_collection(name)


def _path_rewriter(manifest: dict, settings: Settings):
    """Moves registry artifact paths from the backed-up data and models dirs to this install's."""
    moves = [
        (manifest["source"]["models_dir"], str(settings.resolved_models_dir)),
        (manifest["source"]["data_dir"], str(settings.resolved_data_dir)),
    ]

    def rewrite(table: str, row: dict) -> dict:
        column = ARTIFACT_COLUMN[1]
        if table == ARTIFACT_COLUMN[0] and isinstance(row.get(column), str):
            for old, new in moves:
                if row[column] == old or row[column].startswith(old + "/"):
                    row[column] = new + row[column][len(old) :]
                    break
        return row

    return rewrite


def _load_rows(connection: Connection, staged: Path, rewrite) -> int:
    rows = 0
    for table in backup_database.reflect(connection):
        dumped = staged / "database" / f"{table.name}.jsonl"
        if not dumped.exists():
            continue
        try:
            rows += backup_database.load_table(connection, table, dumped, rewrite)
        except (SQLAlchemyError, ValueError, TypeError, KeyError, AttributeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise BadArchive(
                f"The backup's rows of {table.name} do not load into this database ({type(exc).__name__}: {reason}). "
                "The database was left as it was. Nothing was changed."
            ) from exc
    return rows


def _replace_in_one_transaction(url: str, manifest: dict, staged: Path, rewrite) -> int:
    """PostgreSQL: the target's tables are dropped, the backup's migration applied, its rows loaded
    and the newer migrations applied in one transaction (its DDL is transactional)."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection, connection.begin():
            backup_database.drop_everything(connection)
            config = migrations.alembic_config(url)
            config.attributes["connection"] = connection
            if manifest["alembic_revision"] is not None:
                command.upgrade(config, manifest["alembic_revision"])
            rows = _load_rows(connection, staged, rewrite)
            command.upgrade(config, "head")
    finally:
        engine.dispose()
    return rows


def _replace_sqlite(path: Path, url: str, manifest: dict, staged: Path, rewrite) -> int:
    """SQLite commits the migrations' DDL as it goes (alembic/env.py): its file, which _occupied
    created if it was missing, is copied first and put back if anything fails."""
    before = staged / "database-before-restore.sqlite"
    backup_database.copy_sqlite(path, before)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            backup_database.drop_everything(connection)
        if manifest["alembic_revision"] is not None:
            command.upgrade(migrations.alembic_config(url), manifest["alembic_revision"])
        with engine.begin() as connection:
            rows = _load_rows(connection, staged, rewrite)
        migrations.upgrade(url)
    except BaseException:
        engine.dispose()
        backup_database.copy_sqlite(before, path)
        raise
    finally:
        engine.dispose()
    return rows


def _restore_database(settings: Settings, manifest: dict, staged: Path) -> int:
    """The target's tables are replaced, so that the backup's rows go into its own migration's
    schema, also when the target was migrated further; rows that do not load (written by hand,
    or text PostgreSQL refuses that SQLite took) leave the target's database as it was."""
    url = settings.effective_database_url
    rewrite = _path_rewriter(manifest, settings)
    sqlite_file = backup_database.sqlite_file(url)
    if sqlite_file is not None:
        return _replace_sqlite(sqlite_file, url, manifest, staged, rewrite)
    return _replace_in_one_transaction(url, manifest, staged, rewrite)


def _restore_files(settings: Settings, staged: Path) -> int:
    files = get_files(settings)
    root = staged / "files"
    count = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []:
        files.save(path.relative_to(root).as_posix(), path)
        count += 1
    return count


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _restore_models(settings: Settings, manifest: dict, staged: Path) -> int:
    """Copies the models the target lacks; one it holds already, byte for byte, stays untouched
    (models dirs are often shared or read-only images)."""
    count = 0
    for name in _members(manifest, "models/"):
        target = settings.resolved_models_dir / name
        if target.is_file() and _sha256(target) == manifest["members"][f"models/{name}"]["sha256"]:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged / "models" / name, target)
        count += 1
    return count


def _check_room(manifest: dict, staged: Path) -> None:
    """An archive's members can unpack to far more than the file (a few MB of zeros compress a
    thousandfold): one that does not fit is refused before it fills the disk the database is on."""
    needed = sum(facts["size"] for facts in manifest["members"].values())
    free = shutil.disk_usage(staged).free
    if needed > free:
        raise InvalidInput(
            f"Unpacking this backup needs {needed / 1e9:.1f} GB and {staged.parent} has {free / 1e9:.1f} GB free. "
            "Free space there, or restore on a larger disk. Nothing was changed."
        )


def restore_backup(
    path: Path, *, settings: Settings, force: bool = False, on_progress: Progress | None = None
) -> RestoreSummary:
    """Checks the whole archive, then the target, and only then writes: into an empty database,
    file store and Chroma, or over them with `force`."""
    report = on_progress or (lambda fraction, message: None)
    report(0.0, "Checking the archive")
    manifest = verify(path)
    _known_revision(manifest["alembic_revision"])
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    occupied = _occupied(settings, manifest)
    if occupied and not force:
        raise Conflict(
            "Refusing to restore over existing data (" + "; ".join(occupied) + "). "
            "Restore into an empty data dir and database, or pass --force to replace them. Nothing was changed."
        )
    with work_dir(settings) as staged:
        _check_room(manifest, staged)
        report(0.2, "Unpacking")
        extract_to(path, staged)
        report(0.4, "Restoring the database")
        rows = _restore_database(settings, manifest, staged)
        if occupied:  # only once the database is in: rows that do not load leave everything as it was
            _clear(settings, manifest)
        report(0.6, "Restoring files")
        files = _restore_files(settings, staged)
        models = _restore_models(settings, manifest, staged)
        report(0.8, "Restoring vectors")
        vectors = dict(backup_vectors.import_collection(p) for p in sorted((staged / "chroma").glob("*.jsonl")))
    report(1.0, "Restored")
    return RestoreSummary(manifest["alembic_revision"], rows, files, models, vectors)
