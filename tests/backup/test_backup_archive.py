"""What a backup holds, and the refusals of restore: a corrupted, truncated or altered archive
changes nothing, and neither does a restore over data without --force."""

import gzip
import hashlib
import io
import json
import shutil
import tarfile
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from app.backup import archive as backup_archive
from app.backup import backup_and_restore as backup
from app.core import migrations
from app.core.clients import get_chroma
from app.core.db import session_scope
from app.core.errors import Conflict, InvalidInput
from app.core.settings import get_settings
from app.core.storage import storage_from_settings
from app.core.time import utcnow
from app.knowledge.tables import KnowledgeBase
from app.system import temp_files
from tests.conftest import run_strata

COLLECTION = "kb-backup-test"
DOCUMENT = b"The travel desk books flights fourteen days ahead.\n"


@pytest.fixture
def strata(db, settings, make_user, chroma_server, tmp_path):
    """A small Strata: a user, a knowledge base with a stored file and its vectors, and a
    models dir with one built model and a build's leftovers."""
    make_user("someone@x.io", role="staff")
    with session_scope() as db_session:
        db_session.add(KnowledgeBase(name="Travel", collection=COLLECTION))
    stored = settings.resolved_data_dir / "knowledge" / "1" / "travel.txt"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(DOCUMENT)
    collection = get_chroma().get_or_create_collection(COLLECTION, embedding_function=None)
    collection.upsert(ids=["a", "b"], embeddings=[[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], metadatas=[{"d": 1}, {"d": 2}])
    models = tmp_path / "models"
    (models / "tiny").mkdir(parents=True)
    (models / "tiny" / "manifest.json").write_text('{"name": "tiny"}')
    (models / ".tiny.tmp-build").mkdir()
    (models / ".tiny.tmp-build" / "model.onnx").write_bytes(b"half written")
    yield settings.model_copy(update={"models_dir": models, "secret_key": "a-secret-that-must-not-leak-0123456789"})
    get_chroma().delete_collection(COLLECTION)


@pytest.fixture
def archive(strata, tmp_path) -> Path:
    path = tmp_path / "backup.tar.gz"
    backup.create_backup(path, settings=strata)
    return path


def fresh_target(strata, tmp_path: Path):
    return strata.model_copy(update={"data_dir": tmp_path / "fresh", "database_url": "", "models_dir": tmp_path / "m2"})


def test_the_archive_holds_every_store_with_checksums_and_no_secret(archive, strata):
    manifest = backup_archive.verify(archive)
    members = set(manifest["members"])
    assert {"database/user.jsonl", "database/knowledge_base.jsonl", "files/knowledge/1/travel.txt"} <= members
    assert {"models/tiny/manifest.json", f"chroma/{COLLECTION}.jsonl", "settings.json"} <= members
    assert not any(".tiny.tmp-build" in name for name in members)
    assert manifest["alembic_revision"] == migrations.head_revision()
    # Only the knowledge bases' collections: a shared Chroma server holds others.
    assert manifest["database"]["tables"]["user"] == 1 and manifest["vectors"] == {COLLECTION: 2}
    assert manifest["strata_version"] and len(manifest["members"]["settings.json"]["sha256"]) == 64
    with tarfile.open(archive) as tar:
        assert tar.getnames()[-1] == "manifest.json"
        settings_json = json.loads(tar.extractfile("settings.json").read())
        contents = b"".join(tar.extractfile(member).read() for member in tar)
    assert settings_json["data_dir"] == str(strata.data_dir) and "secret_key" not in settings_json
    assert b"a-secret-that-must-not-leak" not in contents


def _truncated(archive: Path, out: Path) -> None:
    out.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])


def _flipped(archive: Path, out: Path) -> None:
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    out.write_bytes(bytes(data))


def _altered(archive: Path, out: Path) -> None:
    """A well-formed archive whose stored document was edited after the manifest was written."""
    with tarfile.open(archive) as source, tarfile.open(out, "w:gz") as target:
        for member in source:
            data = source.extractfile(member).read()
            if member.name == "files/knowledge/1/travel.txt":
                data = data.replace(b"fourteen", b"fifteen!")
            target.addfile(member, io.BytesIO(data))


def _without_manifest(archive: Path, out: Path) -> None:
    with tarfile.open(archive) as source, tarfile.open(out, "w:gz") as target:
        for member in source:
            if member.name != "manifest.json":
                target.addfile(member, source.extractfile(member))


def _not_an_archive(archive: Path, out: Path) -> None:
    out.write_bytes(gzip.compress(b"just some text"))


@pytest.mark.one_backend  # the archive is read before any database is touched
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncated, "truncated or corrupted"),
        (_flipped, "does not match its checksum|truncated or corrupted|has no manifest|manifest is not valid JSON"),
        (_altered, "files/knowledge/1/travel.txt does not match its checksum"),
        (_without_manifest, "has no manifest"),
        (_not_an_archive, "has no manifest|truncated or corrupted"),
    ],
)
def test_a_damaged_archive_is_refused_and_nothing_is_written(archive, strata, tmp_path, damage, reason):
    damaged = tmp_path / "damaged.tar.gz"
    damage(archive, damaged)
    target = fresh_target(strata, tmp_path)
    with pytest.raises(backup_archive.BadArchive, match=reason) as refusal:
        backup.restore_backup(damaged, settings=target)
    assert "Nothing was changed" in refusal.value.message
    assert not target.resolved_data_dir.exists() and not target.resolved_models_dir.exists()


@pytest.mark.one_backend
def test_the_command_refuses_a_truncated_archive_with_a_clear_message(archive, tmp_path):
    damaged = tmp_path / "cut.tar.gz"
    _truncated(archive, damaged)
    fresh = tmp_path / "fresh"
    result = run_strata("restore", str(damaged), env={"STRATA_DATA_DIR": str(fresh), "STRATA_DATABASE_URL": ""})
    assert result.returncode == 1
    assert "cut.tar.gz is not a usable Strata backup: it is truncated or corrupted" in result.stderr
    assert "Nothing was changed" in result.stderr and not fresh.exists()


def test_restoring_over_data_is_refused_without_force_and_replaces_it_with_force(archive, strata):
    with session_scope() as db_session:
        db_session.add(KnowledgeBase(name="Made after the backup", collection="kb-later"))
    (strata.resolved_data_dir / "knowledge" / "1" / "travel.txt").write_bytes(b"edited later")
    with pytest.raises(Conflict, match="Refusing to restore over existing data") as refusal:
        backup.restore_backup(archive, settings=strata)
    assert "the database holds" in refusal.value.message and "--force" in refusal.value.message
    with session_scope() as db_session:
        assert len(db_session.exec(select(KnowledgeBase)).all()) == 2
    assert (strata.resolved_data_dir / "knowledge" / "1" / "travel.txt").read_bytes() == b"edited later"

    summary = backup.restore_backup(archive, settings=strata, force=True)
    assert summary.vectors == {COLLECTION: 2}
    with session_scope() as db_session:
        assert [kb.name for kb in db_session.exec(select(KnowledgeBase))] == ["Travel"]
    assert (strata.resolved_data_dir / "knowledge" / "1" / "travel.txt").read_bytes() == DOCUMENT
    vectors = get_chroma().get_collection(COLLECTION, embedding_function=None).get(include=["metadatas"])
    assert sorted(zip(vectors["ids"], [m["d"] for m in vectors["metadatas"]], strict=True)) == [("a", 1), ("b", 2)]


@pytest.mark.one_backend  # the file store is what differs here
def test_files_kept_in_s3_are_backed_up_and_restored_into_another_bucket(
    db, chroma_server, s3_server, s3_storage, make_user, tmp_path
):
    make_user("someone@x.io", role="staff")
    source = get_settings().model_copy(update={"backup_include_models": False})
    storage_from_settings(source).save("datasets/objects/abc", io.BytesIO(b"text,label\nhello,greeting\n"))
    archive = tmp_path / "s3.tar.gz"
    assert backup.create_backup(archive, settings=source).files == 1

    other_bucket = s3_server.create_bucket(f"strata-restored-{uuid.uuid4().hex[:8]}")
    target = source.model_copy(update={"storage_url": other_bucket, "data_dir": tmp_path / "fresh", "database_url": ""})
    backup.restore_backup(archive, settings=target)
    restored = storage_from_settings(target)
    assert list(restored.iter_keys("datasets")) == [("datasets/objects/abc", 26)]
    assert restored.open("datasets/objects/abc").read() == b"text,label\nhello,greeting\n"


def _with_member(archive: Path, out: Path, name: str, data: bytes) -> None:
    """A consistent archive (the manifest lists the extra member with its checksum), as anyone
    can write one: checksums prove integrity, not where the archive came from."""
    with tarfile.open(archive) as source:
        members = [(member, source.extractfile(member).read()) for member in source]
    manifest = json.loads(dict((m.name, d) for m, d in members)["manifest.json"])
    manifest["members"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    with tarfile.open(out, "w:gz") as target:
        for member, content in members:
            if member.name == "manifest.json":
                continue
            target.addfile(member, io.BytesIO(content))
        extra = tarfile.TarInfo(name)
        extra.size = len(data)
        target.addfile(extra, io.BytesIO(data))
        encoded = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(encoded)
        target.addfile(info, io.BytesIO(encoded))


@pytest.mark.one_backend
@pytest.mark.parametrize("name", ["models/../escaped.txt", "models/tiny/../../escaped.txt", "files/./knowledge/x"])
def test_an_archive_whose_member_names_leave_their_folder_is_refused(archive, strata, tmp_path, name):
    crafted = tmp_path / "crafted.tar.gz"
    _with_member(archive, crafted, name, b"written outside the models dir")
    target = fresh_target(strata, tmp_path)
    with pytest.raises(backup_archive.BadArchive, match="not a plain relative path"):
        backup.restore_backup(crafted, settings=target, force=True)
    assert not (tmp_path / "escaped.txt").exists()
    assert not target.resolved_data_dir.exists() and not target.resolved_models_dir.exists()


@pytest.mark.one_backend
def test_an_archive_that_unpacks_to_more_than_the_free_disk_is_refused_before_unpacking(
    archive, strata, tmp_path, monkeypatch
):
    """A few MB of zeros in a gzip unpack to GBs: the manifest's sizes are checked against the
    disk before anything is unpacked (the disk is made to look nearly full)."""
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=1000))
    target = fresh_target(strata, tmp_path)
    with pytest.raises(InvalidInput, match="Unpacking this backup needs .* GB free") as refusal:
        backup.restore_backup(archive, settings=target, force=True)
    assert "Nothing was changed" in refusal.value.message
    assert not any(target.resolved_data_dir.rglob("*.jsonl")) and not target.resolved_models_dir.exists()


@pytest.mark.one_backend
def test_the_retention_sweep_leaves_a_restore_being_unpacked_alone(archive, strata, tmp_path):
    """A backup made days ago unpacks with its members' times; the hourly sweep, which removes a
    killed backup's scratch by the age of its files, must not take a restore's for one."""
    days_old = tmp_path / "days-old.tar.gz"
    with tarfile.open(archive) as source, tarfile.open(days_old, "w:gz") as target:
        for member in source:
            data = source.extractfile(member).read()
            member.mtime -= 3 * 24 * 3600
            target.addfile(member, io.BytesIO(data))
    restored_into = fresh_target(strata, tmp_path)
    get_chroma().delete_collection(COLLECTION)  # restored from the archive

    def sweep_meanwhile(_fraction: float, message: str) -> None:
        if message == "Restoring the database":
            with session_scope() as db_session:
                temp_files.prune_temp_files(
                    db_session=db_session, settings=restored_into, cutoff=utcnow() - timedelta(hours=24)
                )

    summary = backup.restore_backup(days_old, settings=restored_into, on_progress=sweep_meanwhile)
    # Every stored file the archive holds (other tests of this process may have left some in the store).
    stored = [name for name in backup_archive.verify(archive)["members"] if name.startswith("files/")]
    assert summary.files == len(stored) >= 1 and summary.vectors == {COLLECTION: 2}
    assert summary.rows == sum(backup_archive.verify(archive)["database"]["tables"].values())


def test_a_forced_restore_whose_rows_do_not_load_leaves_the_data_that_was_there(archive, strata, tmp_path):
    """Checksums prove the archive is as written, not that its rows fit this database (written
    by hand, or text PostgreSQL refuses that SQLite took): --force must not have dropped the
    target's data by then."""
    with session_scope() as db_session:
        db_session.add(KnowledgeBase(name="Made after the backup", collection="kb-later"))
    crafted = tmp_path / "bad-rows.tar.gz"
    _with_member(archive, crafted, "database/api_key.jsonl", b'{"id": 1, "no_such_column": "x"}\n')
    with pytest.raises(backup_archive.BadArchive, match="rows of api_key do not load") as refusal:
        backup.restore_backup(crafted, settings=strata, force=True)
    assert "The database was left as it was" in refusal.value.message
    with session_scope() as db_session:
        assert sorted(kb.name for kb in db_session.exec(select(KnowledgeBase))) == ["Made after the backup", "Travel"]
    assert (strata.resolved_data_dir / "knowledge" / "1" / "travel.txt").read_bytes() == DOCUMENT
    assert get_chroma().get_collection(COLLECTION, embedding_function=None).count() == 2
