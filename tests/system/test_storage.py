"""The Storage figures of real stores (database, Valkey, Chroma server, files): an upload makes
them grow, the retention jobs' last runs show, and only admins see any of it, through the API
and through the System page's handler."""

import asyncio
import io
import threading

import pytest

import app.app  # noqa: F401 - builds every page and state
from app.core.clients import get_chroma
from app.core.storage import get_storage
from app.core.time import utcnow
from app.system import retention_jobs
from app.system import storage as storage_module
from app.system.retention import record_run
from app.system.state import SystemState, human_size
from app.system.storage import storage_report
from tests.conftest import reset_caches, sign_in
from tests.predict.test_state import send, signed_in

pytestmark = pytest.mark.usefixtures("chroma_server")

COLLECTION = "storage-figures-test"


@pytest.fixture
def collection(chroma_server):
    client = get_chroma()
    made = client.get_or_create_collection(COLLECTION, embedding_function=None)
    made.add(ids=["a", "b", "c"], embeddings=[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    yield made
    client.delete_collection(COLLECTION)


@pytest.fixture
def admin(make_user):
    return make_user("admin@x.io", role="admin")


async def figures(client, headers) -> dict:
    response = await client.get("/api/v1/system/storage", headers=headers)
    assert response.status_code == 200, response.text
    report = response.json()
    return {store["name"]: store for store in report["stores"]} | {"report": report}


def items(store: dict) -> dict:
    return {item["name"]: item for item in store["items"]}


async def test_admins_see_every_store_and_an_upload_grows_the_files(client, admin, database_url, collection):
    headers = await sign_in(client, admin.email)
    before = await figures(client, headers)
    for name in ("database", "redis", "chroma", "files"):
        assert before[name]["ok"], before[name]["error"]
    assert before["database"]["details"]["backend"] == database_url.split(":")[0].split("+")[0]
    assert before["database"]["size_bytes"] > 0
    assert {"prediction_log", "job", "audit_entry", "usage_event"} <= set(items(before["database"]))
    assert before["redis"]["size_bytes"] > 0 and items(before["redis"])["keys"]["count"] > 0
    assert items(before["chroma"])[COLLECTION]["count"] == 3
    assert set(items(before["files"])) == {"datasets", "knowledge", "predict", "batch", "backups", "temp"}

    data = b"text,label\n" + b"".join(b"row %d of the upload,label%d\n" % (n, n % 3) for n in range(500))
    upload = await client.post(
        "/api/v1/datasets", headers=headers, data={"name": "sized"}, files={"file": ("sized.csv", io.BytesIO(data))}
    )
    assert upload.status_code == 201, upload.text

    after = await figures(client, headers)
    datasets_before, datasets_after = items(before["files"])["datasets"], items(after["files"])["datasets"]
    assert datasets_after["count"] == datasets_before["count"] + 1
    assert datasets_after["size_bytes"] - datasets_before["size_bytes"] == len(data)
    assert after["files"]["size_bytes"] - before["files"]["size_bytes"] == len(data)
    # The upload wrote an audit entry and a dataset version: the database counts it.
    assert items(after["database"])["audit_entry"]["count"] > items(before["database"])["audit_entry"]["count"]


@pytest.mark.one_backend
async def test_files_in_an_s3_bucket_are_counted_through_its_listing(admin, s3_server, monkeypatch):
    bucket = s3_server.create_bucket("storage-figures")
    for name, value in s3_server.environment(bucket).items():
        monkeypatch.setenv(name, value)
    reset_caches()
    try:
        get_storage().save("backups/strata-1.tar", io.BytesIO(b"b" * 3000))
        get_storage().save("predict/news/v1.json", io.BytesIO(b"p" * 200))
        files = {store.name: store for store in (await storage_report(actor=admin)).stores}["files"]
    finally:
        monkeypatch.undo()
        reset_caches()
    assert files.ok, files.error
    assert files.details["stored in"] == bucket
    counted = {item.name: (item.count, item.size_bytes) for item in files.items}
    assert counted["backups"] == (1, 3000) and counted["predict"] == (1, 200) and counted["datasets"] == (0, 0)


async def test_retention_settings_and_last_runs_show(client, admin, settings):
    headers = await sign_in(client, admin.email)
    report = (await figures(client, headers))["report"]
    assert report["retention_policy"]["finished job rows"] == "90 days"
    assert report["retention_policy"]["temporary files"] == "24 hours"
    assert report["retention_runs"] == []

    await retention_jobs.sweep()
    [run] = (await figures(client, headers))["report"]["retention_runs"]
    assert run["job"] == "system.retention" and run["removed"]["job rows"] == 0


@pytest.mark.one_backend
async def test_viewers_and_staff_are_refused(client, staff, viewer):
    assert (await client.get("/api/v1/system/storage")).status_code == 401
    for user in (viewer, staff):
        refused = await client.get("/api/v1/system/storage", headers=await sign_in(client, user.email))
        assert refused.status_code == 403 and "admin role" in refused.json()["detail"]


@pytest.mark.one_backend
async def test_the_system_page_shows_storage_to_admins_only(client, admin, staff, collection):
    await record_run(
        "system.retention",
        started=utcnow(),
        removed={"job rows": 1200, "temporary bytes": 3 * 1024**2},
        errors=["temporary files: ConnectionError: the bucket is unreachable"],
    )
    page = signed_in(SystemState, admin)
    await send(page, SystemState.load_storage)
    [run] = page.retention_runs
    assert run.job == "system.retention" and run.removed == (
        "1,200 job rows, 3.0 MB freed; failed: temporary files: ConnectionError: the bucket is unreachable"
    )
    stores = {store.name: store for store in page.stores}
    assert set(stores) == {"database", "redis", "chroma", "files"}
    assert all(store.ok for store in stores.values()), [store.error for store in stores.values()]
    assert [COLLECTION, "3 vectors", ""] in stores["chroma"].holds
    assert ["finished job rows", "90 days"] in page.retention_policy
    assert page.storage_checked_at and not page.storage_loading

    staff_page = signed_in(SystemState, staff)
    refusal = await send(staff_page, SystemState.load_storage)
    assert "This needs the admin role; you are staff." in str(refusal)
    assert staff_page.stores == [] and staff_page.retention_policy == []


def test_sizes_read_as_people_write_them():
    assert [human_size(n) for n in (None, 0, 1023, 1536, 5 * 1024**2, 3 * 1024**3, 4096 * 1024**3)] == [
        "-",
        "0 B",
        "1023 B",
        "1.5 KB",
        "5.0 MB",
        "3.0 GB",
        "4096.0 GB",
    ]


def test_the_system_page_renders_its_storage_section_for_admins():
    from app.system.page import system_page

    rendered = str(system_page().render())
    assert all(f'id:"{element}"' in rendered for element in ("storage", "storage-refresh", "retention"))
    assert "is_admin" in rendered


@pytest.mark.one_backend
async def test_figures_are_shared_by_concurrent_callers_and_rate_limited(client, admin, settings, monkeypatch):
    monkeypatch.setattr(settings, "rate_limit_per_minute", 3)
    first, second = await asyncio.gather(storage_report(actor=admin), storage_report(actor=admin))
    assert first is second  # one gathering for both, each counted
    headers = await sign_in(client, admin.email)
    answers = [(await client.get("/api/v1/system/storage", headers=headers)).status_code for _ in range(3)]
    assert (
        answers == [200, 429, 429]
        and "Retry-After" in (await client.get("/api/v1/system/storage", headers=headers)).headers
    )


@pytest.mark.one_backend
async def test_a_store_slower_than_the_timeout_is_counted_once_however_often_the_page_opens(
    admin, settings, monkeypatch
):
    """Listing a million keys in a bucket outlasts the timeout; the listing goes on in a worker
    thread. Opening the page again must join it, not start another: a few opens would otherwise
    fill the web process's threads, which every database call waits for."""
    listings = 0
    release = threading.Event()
    count_files = storage_module._files

    def a_slow_listing():
        nonlocal listings
        listings += 1
        release.wait(30)
        return count_files()

    monkeypatch.setattr(storage_module, "_files", a_slow_listing)
    monkeypatch.setattr(storage_module, "_last_figures", {})
    monkeypatch.setattr(storage_module, "STORE_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(settings, "rate_limit_per_minute", 10_000)  # the opens below are not what is tested
    try:
        for _ in range(3):
            report = await storage_report(actor=admin)
            files = next(store for store in report.stores if store.name == "files")
            assert not files.ok and "No answer" in files.error
        assert listings == 1
    finally:
        release.set()
    for _ in range(20):  # the listing under way ends; the next open shows its figures
        report = await storage_report(actor=admin)
        if next(store for store in report.stores if store.name == "files").ok:
            break
        await asyncio.sleep(0.5)
    assert next(store for store in report.stores if store.name == "files").ok

    # Slow again: the page shows the last figures, and says when they were gathered.
    release.clear()
    try:
        report = await storage_report(actor=admin)
    finally:
        release.set()
    files = next(store for store in report.stores if store.name == "files")
    assert files.ok and "datasets" in {item.name for item in files.items}
    assert "counting again takes longer than 0 s" in files.details["figures from"]
