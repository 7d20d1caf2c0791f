"""Documents in, end to end: the API, real `strata worker` processes, the real Chroma
server and the real embedder."""

import pytest
from sqlmodel import func, select

from app.core.clients import get_chroma
from app.core.db import session_scope
from app.core.settings import get_settings
from app.knowledge.tables import Chunk, Document, KnowledgeBase
from jobs.tables import Job
from tests.conftest import wait_until
from tests.knowledge.conftest import (
    ALICE_ANSWER_PAGE,
    ALICE_ANSWER_TEXT,
    ALICE_QUESTION,
    create_kb,
    sign_in,
    upload,
    wait_documents,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def chroma_count(kb_id: int, document_id: int | None = None) -> int:
    with session_scope() as db_session:
        collection_name = db_session.get(KnowledgeBase, kb_id).collection
    collection = get_chroma().get_collection(collection_name)
    where = {"document_id": document_id} if document_id is not None else None
    return len(collection.get(where=where, include=[])["ids"])


def db_chunks(document_id: int) -> int:
    with session_scope() as db_session:
        return db_session.exec(select(func.count()).select_from(Chunk).where(Chunk.document_id == document_id)).one()


def stored_files(kb_id: int) -> list[str]:
    """Files kept for this knowledge base, and any upload still being received."""
    root = get_settings().resolved_data_dir / "knowledge"
    return sorted(
        str(p) for folder in (root / str(kb_id), root / "incoming") if folder.exists() for p in folder.iterdir()
    )


async def test_pdf_and_bad_files_uploaded_together(client, workers, staff, alice_pdf):
    workers()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    response = await upload(
        client,
        headers,
        kb["id"],
        ("alice.pdf", alice_pdf),
        ("scan.pdf", PNG),
        ("empty.txt", b""),
        ("notes.md", b"# Tea\nThe Hatter always takes tea at six o'clock."),
    )
    assert response.status_code == 202, response.text
    assert [d["status"] for d in response.json()] == ["queued"] * 4
    documents = {d["filename"]: d for d in await wait_documents(client, headers, kb["id"])}
    assert documents["scan.pdf"]["status"] == "failed"
    assert documents["scan.pdf"]["error"] == "This file is a PNG image, not a PDF."
    assert documents["empty.txt"]["error"] == "The file is empty."
    alice = documents["alice.pdf"]
    assert alice["status"] == "ready", alice["error"]
    assert alice["content_type"] == "pdf" and alice["page_count"] == 83 and alice["chunk_count"] > 100
    assert chroma_count(kb["id"], alice["id"]) == alice["chunk_count"] == db_chunks(alice["id"])
    assert documents["notes.md"]["status"] == "ready"

    passages = (await client.post("/api/v1/search", headers=headers, json={"query": ALICE_QUESTION})).json()
    assert passages[0]["document_name"] == "alice.pdf" and passages[0]["page"] == ALICE_ANSWER_PAGE
    assert ALICE_ANSWER_TEXT in passages[0]["text"]
    tea = (
        await client.post("/api/v1/search", headers=headers, json={"query": "When does the Hatter take tea?"})
    ).json()
    assert tea[0]["document_name"] == "notes.md" and tea[0]["heading"] == "Tea"

    original = await client.get(f"/api/v1/knowledge/documents/{alice['id']}/file", headers=headers)
    assert original.status_code == 200 and original.content == alice_pdf
    assert original.headers["content-type"] == "application/pdf"
    assert original.headers["content-disposition"].startswith("inline")


async def test_identical_content_is_not_ingested_twice(client, workers, staff):
    workers()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    assert (await upload(client, headers, kb["id"], ("a.txt", b"The Queen wants their heads."))).status_code == 202
    await wait_documents(client, headers, kb["id"])
    again = await upload(client, headers, kb["id"], ("copy.txt", b"The Queen wants their heads."))
    assert again.status_code == 409
    assert "already in this knowledge base as 'a.txt'" in again.json()["detail"]
    listed = (await client.get(f"/api/v1/knowledge/{kb['id']}/documents", headers=headers)).json()
    assert [d["filename"] for d in listed] == ["a.txt"]
    with session_scope() as db_session:
        assert db_session.exec(select(func.count()).select_from(Job)).one() == 1


async def test_deleting_documents_and_knowledge_bases_removes_their_vectors(client, workers, staff):
    workers()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    await upload(client, headers, kb["id"], ("a.txt", b"Cats and bats."), ("b.txt", b"Mock turtles sing."))
    documents = {d["filename"]: d for d in await wait_documents(client, headers, kb["id"])}
    assert chroma_count(kb["id"]) == 2
    assert (
        await client.delete(f"/api/v1/knowledge/documents/{documents['a.txt']['id']}", headers=headers)
    ).status_code == 204
    assert chroma_count(kb["id"]) == 1 and db_chunks(documents["a.txt"]["id"]) == 0
    cats = (await client.post("/api/v1/search", headers=headers, json={"query": "cats and bats"})).json()
    assert [p["document_name"] for p in cats] == ["b.txt"]
    with session_scope() as db_session:
        collection_name = db_session.get(KnowledgeBase, kb["id"]).collection
    assert (await client.delete(f"/api/v1/knowledge/{kb['id']}", headers=headers)).status_code == 204
    assert collection_name not in [c.name for c in get_chroma().list_collections()]
    assert stored_files(kb["id"]) == []
    assert (await client.get(f"/api/v1/knowledge/{kb['id']}/documents", headers=headers)).status_code == 404


async def test_a_file_over_the_size_limit_is_refused_and_nothing_is_stored(client, staff, monkeypatch):
    monkeypatch.setenv("STRATA_UPLOAD_MAX_MB", "0.01")
    get_settings.cache_clear()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    response = await upload(client, headers, kb["id"], ("small.txt", b"fine"), ("big.txt", b"x" * 20_000))
    assert response.status_code == 413
    assert response.json()["detail"] == "big.txt is larger than the limit of 0.01 MB a file; nothing was stored."
    assert (await client.get(f"/api/v1/knowledge/{kb['id']}/documents", headers=headers)).json() == []
    assert stored_files(kb["id"]) == []
    monkeypatch.delenv("STRATA_UPLOAD_MAX_MB")
    get_settings.cache_clear()


async def test_a_worker_killed_mid_ingestion_leaves_no_ready_half_document(
    client, workers, worker_env, staff, alice_pdf
):
    worker_env["STRATA_EMBED_BATCH_SIZE"] = "4"  # many small steps, so the kill lands mid-way
    first = workers()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    (document,) = (await upload(client, headers, kb["id"], ("alice.pdf", alice_pdf))).json()

    def part_way() -> bool:
        with session_scope() as db_session:
            job = db_session.get(Job, db_session.get(Document, document["id"]).job_id or "")
            return job is not None and job.status == "running" and 0.2 < job.progress < 0.8

    wait_until(part_way, 120, "ingestion part-way", interval=0.05)
    first.kill()
    assert chroma_count(kb["id"], document["id"]) > 0  # vectors of the killed attempt were written...
    killed = (await client.get(f"/api/v1/knowledge/documents/{document['id']}", headers=headers)).json()
    assert killed["status"] == "ingesting" and db_chunks(document["id"]) == 0  # ...but nothing is searchable
    assert (await client.post("/api/v1/search", headers=headers, json={"query": ALICE_QUESTION})).json() == []

    workers()
    (ready,) = await wait_documents(client, headers, kb["id"], timeout=240)
    assert ready["status"] == "ready", ready["error"]
    assert ready["chunk_count"] == db_chunks(document["id"]) == chroma_count(kb["id"], document["id"])
    with session_scope() as db_session:
        assert db_session.get(Job, ready["job_id"]).attempts == 2


@pytest.mark.parametrize("reader_roles", [["staff"]])
async def test_a_viewer_without_access_gets_nothing(client, make_user, staff, viewer, reader_roles):
    staff_headers = await sign_in(client, "staff@x.io")
    viewer_headers = await sign_in(client, "viewer@x.io")
    private = await create_kb(client, staff_headers, name="Private", reader_roles=reader_roles)
    public = await create_kb(client, staff_headers, name="Public", reader_roles=["viewer"])
    (document,) = (await upload(client, staff_headers, private["id"], ("s.txt", b"Salaries are secret."))).json()
    from app.knowledge import service

    service.ingest_document(document["id"], on_progress=lambda *_: None)

    assert [kb["name"] for kb in (await client.get("/api/v1/knowledge", headers=viewer_headers)).json()] == ["Public"]
    for path in (
        f"/api/v1/knowledge/{private['id']}",
        f"/api/v1/knowledge/{private['id']}/documents",
        f"/api/v1/knowledge/documents/{document['id']}",
        f"/api/v1/knowledge/documents/{document['id']}/file",
    ):
        assert (await client.get(path, headers=viewer_headers)).status_code == 403, path
    refused = await client.post(
        "/api/v1/search", headers=viewer_headers, json={"query": "salaries", "knowledge_base_ids": [private["id"]]}
    )
    assert refused.status_code == 403 and "Private" in refused.json()["detail"]
    assert (await client.post("/api/v1/search", headers=viewer_headers, json={"query": "salaries"})).json() == []
    found = (await client.post("/api/v1/search", headers=staff_headers, json={"query": "salaries"})).json()
    assert [p["document_name"] for p in found] == ["s.txt"]
    assert (await upload(client, viewer_headers, public["id"], ("v.txt", b"x"))).status_code == 403
    assert (await client.post("/api/v1/knowledge", headers=viewer_headers, json={"name": "Mine"})).status_code == 403
    assert (await client.delete(f"/api/v1/knowledge/{public['id']}", headers=viewer_headers)).status_code == 403
    missing = await client.post(
        "/api/v1/search", headers=staff_headers, json={"query": "x", "knowledge_base_ids": [999]}
    )
    assert missing.status_code == 404
