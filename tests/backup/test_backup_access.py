"""Backups from the System page are for admins only, through the service, the routes and the
page's handlers alike: an archive holds every user's data and password hashes."""

import asyncio
import io
import shutil
import tarfile

import pytest
from sqlmodel import select

from app.backup import archive as backup_archive
from app.backup import service as backup_service
from app.core.db import session_scope
from app.core.errors import Conflict, Forbidden, NotFound
from app.core.settings import get_settings
from app.core.storage import get_storage
from app.system.backup_state import BackupState
from jobs.tables import Job
from tests.conftest import sign_in
from tests.predict.test_state import send, signed_in


@pytest.fixture
def admin(make_user):
    return make_user("admin@x.io", role="admin")


@pytest.fixture
def small_backups(monkeypatch, settings):
    """Before the workers start: their backups leave out the 200 MB of built models."""
    monkeypatch.setenv("STRATA_BACKUP_INCLUDE_MODELS", "false")
    yield
    shutil.rmtree(settings.resolved_data_dir / "backups", ignore_errors=True)


def backup_jobs() -> list[Job]:
    with session_scope() as db_session:
        return list(db_session.exec(select(Job).where(Job.kind == backup_service.BACKUP_NOW)))


async def test_staff_and_viewers_cannot_start_list_or_download_backups(client, redis_url, staff, viewer, settings):
    for user in (staff, viewer):
        with pytest.raises(Forbidden):
            await backup_service.start_backup(actor=user)
        with pytest.raises(Forbidden):
            backup_service.list_backups(actor=user, settings=settings)
        with pytest.raises(Forbidden):
            backup_service.open_backup(actor=user, settings=settings, name="strata-1.tar.gz")
        headers = await sign_in(client, user.email)
        assert (await client.post("/api/v1/system/backups", headers=headers)).status_code == 403
        assert (await client.get("/api/v1/system/backups", headers=headers)).status_code == 403
        assert (await client.get("/api/v1/system/backups/strata-1.tar.gz", headers=headers)).status_code == 403
        page = signed_in(BackupState, user)
        await send(page, BackupState.back_up_now)
        assert page.job_status == ""
    client.cookies.clear()  # the sign-ins' session cookies
    assert (await client.get("/api/v1/system/backups")).status_code == 401
    assert backup_jobs() == []


@pytest.mark.one_backend  # a worker process each time; backups of PostgreSQL are tested in test_backup_archive.py
async def test_an_admin_backs_up_from_the_page_and_downloads_the_archive(
    small_backups, chroma_server, client, workers, admin, settings
):
    workers()
    page = signed_in(BackupState, admin)
    await send(page, BackupState.back_up_now)
    assert page.job_status == "queued"
    [job] = backup_jobs()
    headers = await sign_in(client, admin.email)
    for _ in range(600):
        state = (await client.get(f"/api/v1/jobs/{job.id}", headers=headers)).json()
        if state["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.2)
    assert state["status"] == "succeeded", state
    name = state["result"]["name"]

    listed = (await client.get("/api/v1/system/backups", headers=headers)).json()
    assert [item["name"] for item in listed] == [name]
    download = await client.get(f"/api/v1/system/backups/{name}", headers=headers)
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"'
    archive = settings.resolved_data_dir / "downloaded.tar.gz"
    archive.write_bytes(download.content)
    manifest = backup_archive.verify(archive)
    assert manifest["database"]["tables"]["user"] == 1
    with tarfile.open(fileobj=io.BytesIO(download.content)) as tar:
        assert "database/job.jsonl" in tar.getnames()
    archive.unlink()

    for probe in ("..%2Fstrata.db", "strata.db", "missing.tar.gz"):
        assert (await client.get(f"/api/v1/system/backups/{probe}", headers=headers)).status_code == 404
    with pytest.raises(NotFound):
        backup_service.open_backup(actor=admin, settings=get_settings(), name="../strata.db")


async def test_one_backup_at_a_time(redis_url, admin):
    """No worker runs here: the first stays queued, and a second is refused until it ends."""
    first = await backup_service.start_backup(actor=admin)
    with pytest.raises(Conflict, match="already being written"):
        await backup_service.start_backup(actor=admin)
    assert [job.id for job in backup_jobs()] == [first.id]


@pytest.mark.one_backend
async def test_a_backup_kept_in_s3_streams_to_the_admin_without_a_copy_on_the_web_machine(
    s3_storage, client, admin, settings
):
    """A backup is GBs: fetching it whole before the first byte outlasts proxies' read timeouts,
    and a copy kept in the web process's cache fills its disk, one per backup downloaded."""
    name = "strata-20261204T101500000000Z.tar.gz"
    content = bytes(range(256)) * 40_000
    get_storage().save(f"backups/{name}", io.BytesIO(content))
    headers = await sign_in(client, admin.email)
    download = await client.get(f"/api/v1/system/backups/{name}", headers=headers)
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-disposition"] == f'attachment; filename="{name}"'
    assert download.headers["content-length"] == str(len(content))
    assert download.headers["x-content-type-options"] == "nosniff"
    copies = settings.resolved_data_dir / "cache" / "storage" / "objects"
    assert not copies.exists() or not any(path.is_file() for path in copies.rglob("*"))
    assert (await client.get("/api/v1/system/backups/strata-1.tar.gz", headers=headers)).status_code == 404
