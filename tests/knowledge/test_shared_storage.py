"""Files shared the way clusters share them (issue 12, point 3): the web side (this process)
and a worker with a data dir of its own share only an S3-compatible store (moto's server)."""

from app.core.settings import get_settings
from app.core.storage import get_storage
from tests.conftest import WorkerProcess, sign_in
from tests.knowledge.conftest import create_kb, upload, wait_documents


async def test_a_document_stored_in_s3_is_ingested_by_a_worker_with_its_own_data_dir(
    s3_storage, client, worker_env, staff, tmp_path
):
    worker_data = tmp_path / "worker-data"
    worker = WorkerProcess({**worker_env, **s3_storage, "STRATA_DATA_DIR": str(worker_data)}).start()
    try:
        headers = await sign_in(client, staff.email)
        kb = await create_kb(client, headers)
        text = b"The lighthouse keeper logs every passing ship in a green ledger."
        await upload(client, headers, kb["id"], ("ledger.txt", text), ("other.txt", b"Bread rises overnight."))
        documents = {d["filename"]: d for d in await wait_documents(client, headers, kb["id"])}
    finally:
        worker.stop()
    assert {d["status"] for d in documents.values()} == {"ready"}, documents

    found = (await client.post("/api/v1/search", headers=headers, json={"query": "who logs the ships?"})).json()
    assert found[0]["document_name"] == "ledger.txt"
    keys = [key for key, _size in get_storage().iter_keys(f"knowledge/{kb['id']}")]
    assert len(keys) == 2
    # The web kept nothing but the bucket; the worker parsed its own copy, fetched from it.
    assert not (get_settings().resolved_data_dir / "knowledge" / str(kb["id"])).exists()
    assert sorted(
        p.read_bytes() for p in (worker_data / "cache" / "storage" / "objects" / "knowledge").rglob("*.txt")
    ) == [
        b"Bread rises overnight.",
        text,
    ]
    # The original, served from the store.
    original = await client.get(f"/api/v1/knowledge/documents/{documents['ledger.txt']['id']}/file", headers=headers)
    assert original.status_code == 200 and original.content == text

    deleted = await client.delete(f"/api/v1/knowledge/documents/{documents['ledger.txt']['id']}", headers=headers)
    assert deleted.status_code == 204
    assert len(list(get_storage().iter_keys(f"knowledge/{kb['id']}"))) == 1
    assert (await client.delete(f"/api/v1/knowledge/{kb['id']}", headers=headers)).status_code == 204
    assert list(get_storage().iter_keys(f"knowledge/{kb['id']}")) == []
