"""Upgrades keep data. A database made at the first migration, with a row in every table that
exists at each step, is upgraded to the newest on SQLite and PostgreSQL and still holds every
value; a migration that fails leaves the database as it was and says how to restore it."""

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, inspect, select
from sqlalchemy import types as sqltypes

from alembic import command
from app.backup import archive as backup_archive
from app.backup import backup_and_restore as backup
from app.backup import upgrade
from app.core import migrations
from app.core.db import get_engine, make_engine
from app.core.settings import get_settings
from app.core.storage import get_storage
from tests.backup.conftest import empty_database
from tests.conftest import reset_caches, run_strata

BACKENDS = ["sqlite", "postgresql"]


def revisions() -> list[str]:
    """Oldest first."""
    script = ScriptDirectory.from_config(migrations.alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


def _value(table: Table, column, connection):
    """A value of the column's type, pointing at the referenced row for a foreign key."""
    for key in column.foreign_keys:
        target = key.column
        return connection.execute(select(target).select_from(target.table).limit(1)).scalar()
    kind = column.type
    if isinstance(kind, sqltypes.Boolean):
        return True
    if isinstance(kind, sqltypes.Integer):
        return 7
    if isinstance(kind, sqltypes.Float | sqltypes.Numeric):
        return 0.5
    if isinstance(kind, sqltypes.DateTime):
        return datetime(2026, 1, 2, 3, 4, 5)
    if isinstance(kind, sqltypes.Date):
        return date(2026, 1, 2)
    if isinstance(kind, sqltypes.JSON):
        return {"kept": f"{table.name}.{column.name}"}
    if isinstance(kind, sqltypes._Binary):
        return f"{table.name}.{column.name}".encode()
    text = f"{table.name}.{column.name}"
    length = getattr(kind, "length", None)
    return text[-length:] if length else text


def add_a_row_to_every_new_table(engine, filled: dict[str, dict]) -> None:
    metadata = MetaData()
    with engine.begin() as connection:
        metadata.reflect(connection)
        for table in metadata.sorted_tables:
            if table.name in filled or table.name == "alembic_version":
                continue
            row = {}
            for column in table.columns:
                generated = column.primary_key and isinstance(column.type, sqltypes.Integer) and not column.foreign_keys
                if not generated:
                    row[column.name] = _value(table, column, connection)
            connection.execute(table.insert(), row)
            filled[table.name] = row


def comparable(value):
    """As written: PostgreSQL's timestamps come back in UTC, SQLite's without a zone."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return bytes(value) if isinstance(value, memoryview) else value


@pytest.fixture(params=BACKENDS)
def empty_url(request, tmp_path):
    with empty_database(request.param, tmp_path, "upgrade") as url:
        yield url


def test_a_database_filled_at_every_step_from_the_first_migration_keeps_every_value(empty_url):
    engine = make_engine(empty_url)
    config = migrations.alembic_config(empty_url)
    filled: dict[str, dict] = {}
    try:
        for revision in revisions():
            command.upgrade(config, revision)
            add_a_row_to_every_new_table(engine, filled)
        assert "user" in filled and "knowledge_chunk" in filled and len(filled) > 25
        metadata = MetaData()
        with engine.connect() as connection:
            metadata.reflect(connection)
            assert migrations.current_revision(engine) == migrations.head_revision()
            for name, written in filled.items():
                rows = connection.execute(select(metadata.tables[name])).mappings().all()
                assert len(rows) == 1, f"{name}: {len(rows)} rows"
                [row] = rows
                kept = {column: comparable(row[column]) for column in written if column in row}
                assert kept == {column: written[column] for column in kept}, name
    finally:
        engine.dispose()


def broken_scripts(tmp_path: Path) -> Path:
    """A copy of the project's migrations with one more that creates a table, changes the
    user table and then fails, as a bad release's migration would."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(migrations.PROJECT_ROOT / "alembic.ini", root / "alembic.ini")
    shutil.copytree(migrations.PROJECT_ROOT / "alembic", root / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    head = migrations.head_revision()
    (root / "alembic" / "versions" / "9999_broken.py").write_text(
        f'''"""A migration that fails halfway."""
import sqlalchemy as sa

from alembic import op

revision = "9999"
down_revision = "{head}"


def upgrade() -> None:
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    with op.batch_alter_table("user") as batch_op:
        batch_op.add_column(sa.Column("half_done", sa.Integer(), nullable=True))
    op.execute("UPDATE knowledge_base SET name = 'overwritten'")
    raise RuntimeError("this release's migration is broken")


def downgrade() -> None:
    pass
'''
    )
    return root


@pytest.fixture
def database_at_an_older_release(empty_url, tmp_path, monkeypatch):
    """The database at 0016 with data, as the previous release left it, pointed at by the settings.
    No Chroma: `strata run` migrates before it starts the embedded one."""
    monkeypatch.setenv("STRATA_DATABASE_URL", empty_url)
    monkeypatch.setenv("STRATA_DATA_DIR", str(tmp_path / "data"))
    reset_caches()
    command.upgrade(migrations.alembic_config(empty_url), "0016")
    filled: dict[str, dict] = {}
    add_a_row_to_every_new_table(get_engine(), filled)
    yield filled
    get_engine().dispose()
    monkeypatch.undo()
    reset_caches()


def snapshot(engine) -> dict:
    metadata = MetaData()
    with engine.connect() as connection:
        metadata.reflect(connection)
        return {
            name: [tuple(comparable(v) for v in row) for row in connection.execute(select(table))]
            for name, table in metadata.tables.items()
        } | {"columns of user": sorted(c["name"] for c in inspect(connection).get_columns("user"))}


def test_a_failing_migration_leaves_the_database_as_it_was_and_says_how_to_restore(
    database_at_an_older_release, tmp_path, monkeypatch
):
    monkeypatch.setattr(migrations, "PROJECT_ROOT", broken_scripts(tmp_path))
    migrations.head_revision.cache_clear()
    before = snapshot(get_engine())
    try:
        with pytest.raises(upgrade.MigrationFailed) as failure:
            upgrade.upgrade(get_settings(), log=lambda message: None)
    finally:
        migrations.head_revision.cache_clear()
    message = failure.value.message
    assert "Migrating from 0016 to 9999 failed" in message and "this release's migration is broken" in message
    assert "left as it was, at revision 0016" in message and "strata restore" in message
    # Two good migrations ran before the broken one: they are undone too.
    assert snapshot(get_engine()) == before
    assert migrations.current_revision(get_engine()) == "0016"
    [backup_file] = (tmp_path / "data" / "backups").iterdir()
    assert backup_file.name in message
    manifest = backup_archive.verify(backup_file)
    assert manifest["alembic_revision"] == "0016"
    assert manifest["database"]["tables"]["user"] == 1


def test_an_upgrade_backs_up_first_unless_turned_off(database_at_an_older_release, tmp_path, monkeypatch):
    settings = get_settings().model_copy(update={"backup_before_migrate": False, "backup_include_models": False})
    result = upgrade.upgrade(settings, log=lambda message: None)
    assert (result.before, result.after, result.backup_key) == ("0016", migrations.head_revision(), None)
    assert not (tmp_path / "data" / "backups").exists()
    # At the newest already: nothing to back up, nothing applied.
    again = upgrade.upgrade(get_settings(), log=lambda message: None)
    assert again.backup_key is None and again.before == again.after


@pytest.mark.parametrize("empty_url", ["sqlite"], indirect=True)
def test_strata_migrate_backs_up_an_older_database_before_upgrading_it(database_at_an_older_release, tmp_path):
    result = run_strata("migrate", env={"STRATA_BACKUP_INCLUDE_MODELS": "false"})
    assert result.returncode == 0, result.stderr
    assert f"Backing up before migrating from 0016 to {migrations.head_revision()}" in result.stdout
    [archive] = (tmp_path / "data" / "backups").iterdir()
    assert f"Backup written: backups/{archive.name}" in result.stdout
    assert backup_archive.verify(archive)["database"]["tables"]["user"] == 1
    assert migrations.current_revision(get_engine()) == migrations.head_revision()


def test_a_backup_of_an_older_release_restores_into_this_one_at_the_newest_migration(
    database_at_an_older_release, tmp_path
):
    archive = tmp_path / "before-upgrade.tar.gz"
    backup.create_backup(archive, settings=get_settings(), database_and_files_only=True)
    target = get_settings().model_copy(update={"data_dir": tmp_path / "new", "database_url": ""})
    target.resolved_data_dir.mkdir()
    migrations.upgrade(target.effective_database_url)  # a new install's empty database, already at the newest
    backup.restore_backup(archive, settings=target)
    engine = make_engine(target.effective_database_url)
    try:
        assert migrations.current_revision(engine) == migrations.head_revision()
        metadata = MetaData()
        with engine.connect() as connection:
            metadata.reflect(connection)
            for name, written in database_at_an_older_release.items():
                [row] = connection.execute(select(metadata.tables[name])).mappings().all()
                assert {column: comparable(row[column]) for column in written} == written, name
    finally:
        engine.dispose()


def test_a_backup_that_cannot_be_written_stops_the_upgrade_and_says_what_to_do(database_at_an_older_release):
    """The file store is S3 and down (nothing answers at its endpoint): no migration runs."""
    before = snapshot(get_engine())
    result = run_strata(
        "migrate",
        env={
            "STRATA_STORAGE_URL": "s3://strata-backups/here",
            "STRATA_S3_ENDPOINT_URL": "http://127.0.0.1:9",
            "STRATA_BACKUP_INCLUDE_MODELS": "false",
        },
    )
    assert result.returncode == 1
    assert "The backup before migrating from 0016" in result.stderr and "failed" in result.stderr
    assert "Nothing was migrated: the database is still at revision 0016" in result.stderr
    assert "STRATA_BACKUP_BEFORE_MIGRATE=false" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(get_engine()) == before


@pytest.mark.parametrize("empty_url", ["sqlite"], indirect=True)
def test_a_failing_migration_names_its_backup_in_an_s3_store_without_fetching_it(
    s3_storage, database_at_an_older_release, tmp_path, monkeypatch
):
    """The message must not depend on the store answering again, nor copy GBs to say where it is."""
    monkeypatch.setattr(migrations, "PROJECT_ROOT", broken_scripts(tmp_path))
    migrations.head_revision.cache_clear()
    settings = get_settings().model_copy(update={"backup_include_models": False})
    try:
        with pytest.raises(upgrade.MigrationFailed) as failure:
            upgrade.upgrade(settings, log=lambda message: None)
    finally:
        migrations.head_revision.cache_clear()
    [(key, _size)] = list(get_storage().iter_keys("backups"))
    assert f"{settings.storage_url.rstrip('/')}/{key}" in failure.value.message
    assert "strata restore" in failure.value.message
    copies = settings.resolved_data_dir / "cache" / "storage" / "objects"
    assert not copies.exists() or not any(path.is_file() for path in copies.rglob("*"))
