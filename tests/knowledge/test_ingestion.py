"""Documents in, end to end: the API, real `strata worker` processes, the real Chroma
server and the real embedder."""

from pathlib import Path

import pytest
from sqlmodel import func, select

from app.core.clients import get_chroma
from app.core.db import session_scope
from app.core.settings import get_settings
from app.core.storage import get_storage
from app.core.uploads import incoming_dir
from app.knowledge.tables import Chunk, Document, KnowledgeBase
from jobs.tables import Job
from tests.conftest import sign_in, wait_until
from tests.knowledge import hostile
from tests.knowledge.conftest import (
    ALICE_ANSWER_PAGE,
    ALICE_ANSWER_TEXT,
    ALICE_QUESTION,
    create_kb,
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
    incoming = incoming_dir(get_settings(), "knowledge")
    received = [str(p) for p in incoming.iterdir()] if incoming.exists() else []
    return sorted([key for key, _size in get_storage().iter_keys(f"knowledge/{kb_id}")] + received)


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
    assert original.headers["x-content-type-options"] == "nosniff"
    assert original.headers["content-security-policy"] == "sandbox; default-src 'none'"


async def test_an_uploaded_page_is_never_served_as_a_page_that_runs(client, workers, staff):
    """A staff member's HTML with a script must not run as whoever opens its citation."""
    workers()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    page = b"<!DOCTYPE html><html><body><h1>Policy</h1><p>Staff may work from home.</p><script>fetch('/api/v1/auth/keys')</script></body></html>"
    await upload(client, headers, kb["id"], ("policy.html", page), ("notes.docx", b"PK"))
    documents = {d["filename"]: d for d in await wait_documents(client, headers, kb["id"])}
    assert documents["policy.html"]["status"] == "ready" and documents["notes.docx"]["status"] == "failed"
    served = await client.get(f"/api/v1/knowledge/documents/{documents['policy.html']['id']}/file", headers=headers)
    assert served.status_code == 200 and served.content == page
    assert served.headers["content-type"] == "text/plain; charset=utf-8"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"].startswith("sandbox;")
    assert "default-src 'none'" in served.headers["content-security-policy"]
    # A document never read (this "DOCX" failed) downloads as bytes, whatever its name says.
    download = await client.get(f"/api/v1/knowledge/documents/{documents['notes.docx']['id']}/file", headers=headers)
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["x-content-type-options"] == "nosniff"


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
    make_user("admin@x.io", role="admin")
    staff_headers = await sign_in(client, "staff@x.io")
    viewer_headers = await sign_in(client, "viewer@x.io")
    private = await create_kb(client, staff_headers, name="Private", reader_roles=reader_roles)
    public = await create_kb(client, staff_headers, name="Public", reader_roles=["viewer"])
    (document,) = (await upload(client, staff_headers, private["id"], ("s.txt", b"Salaries are secret."))).json()
    from app.knowledge import service

    service.ingest_document(document["id"], on_progress=lambda *_: None)

    assert [kb["name"] for kb in (await client.get("/api/v1/knowledge", headers=viewer_headers)).json()] == ["Public"]
    # Everything about a knowledge base the viewer may not read answers as if it did not exist.
    for path in (
        f"/api/v1/knowledge/{private['id']}",
        f"/api/v1/knowledge/{private['id']}/documents",
        f"/api/v1/knowledge/documents/{document['id']}",
        f"/api/v1/knowledge/documents/{document['id']}/file",
    ):
        refused = await client.get(path, headers=viewer_headers)
        assert refused.status_code == 404, path
        assert "Private" not in refused.text and "s.txt" not in refused.text, path
        assert "does not exist or you may not read it" in refused.json()["detail"], path
    refused = await client.post(
        "/api/v1/search", headers=viewer_headers, json={"query": "salaries", "knowledge_base_ids": [private["id"]]}
    )
    assert refused.status_code == 404 and "Private" not in refused.text
    missing = await client.post(
        "/api/v1/search", headers=viewer_headers, json={"query": "salaries", "knowledge_base_ids": [999]}
    )
    assert missing.status_code == 404
    assert missing.json()["detail"] == refused.json()["detail"].replace(str(private["id"]), "999")
    assert (await client.post("/api/v1/search", headers=viewer_headers, json={"query": "salaries"})).json() == []
    found = (await client.post("/api/v1/search", headers=staff_headers, json={"query": "salaries"})).json()
    assert [p["document_name"] for p in found] == ["s.txt"]
    assert (await upload(client, viewer_headers, public["id"], ("v.txt", b"x"))).status_code == 403
    assert (await client.post("/api/v1/knowledge", headers=viewer_headers, json={"name": "Mine"})).status_code == 403
    assert (await client.delete(f"/api/v1/knowledge/{public['id']}", headers=viewer_headers)).status_code == 403
    # Staff may not read an admin-only knowledge base: changing or deleting it answers 404, naming nothing.
    admin_only = await create_kb(client, await sign_in(client, "admin@x.io"), name="Board minutes", reader_roles=[])
    for method, path in (
        ("PATCH", f"/api/v1/knowledge/{admin_only['id']}"),
        ("DELETE", f"/api/v1/knowledge/{admin_only['id']}"),
        ("GET", f"/api/v1/knowledge/{admin_only['id']}/documents"),
    ):
        refused = await client.request(
            method, path, headers=staff_headers, json={"name": "x"} if method == "PATCH" else None
        )
        assert refused.status_code == 404 and "Board minutes" not in refused.text, path
    upload_refused = await upload(client, staff_headers, admin_only["id"], ("x.txt", b"x"))
    assert upload_refused.status_code == 404 and "Board minutes" not in upload_refused.text
    assert stored_files(admin_only["id"]) == []


def worker_children(worker) -> set[int]:
    """The worker process's live child processes (its parse processes)."""
    found = set()
    for task in Path(f"/proc/{worker.process.pid}/task").iterdir():
        found.update(int(pid) for pid in (task / "children").read_text().split())
    return found


async def test_hostile_documents_fail_only_themselves(client, workers, worker_env, staff):
    worker_env.update(STRATA_PDF_MAX_PAGES="20", STRATA_ARCHIVE_MAX_EXPANDED_MB="20")
    workers()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    response = await upload(
        client,
        headers,
        kb["id"],
        ("bomb.docx", hostile.zip_bomb_docx(expanded_mb=100)),
        ("long.pdf", hostile.long_pdf(21)),
        ("deep.html", hostile.nested_html()),
        ("notes.md", b"# Tea\nThe Hatter always takes tea at six o'clock."),
    )
    assert response.status_code == 202, response.text
    documents = {d["filename"]: d for d in await wait_documents(client, headers, kb["id"])}
    assert documents["bomb.docx"]["status"] == "failed"
    assert documents["bomb.docx"]["error"].startswith("This DOCX expands to more than 20 MB when unpacked")
    assert documents["long.pdf"]["status"] == "failed"
    assert documents["long.pdf"]["error"].startswith("This PDF has more than 20 pages")
    assert documents["deep.html"]["status"] == "ready", documents["deep.html"]["error"]
    assert documents["notes.md"]["status"] == "ready"
    deep = (await client.post("/api/v1/search", headers=headers, json={"query": "innermost words"})).json()
    assert deep[0]["document_name"] == "deep.html"


async def test_a_parse_over_the_time_limit_frees_its_worker(client, workers, worker_env, staff):
    worker_env["STRATA_PARSE_TIMEOUT_SECONDS"] = "2"
    worker = workers()
    headers = await sign_in(client, "staff@x.io")
    kb = await create_kb(client, headers)
    await upload(client, headers, kb["id"], ("long.html", hostile.long_html(25)))
    (slow,) = await wait_documents(client, headers, kb["id"])
    assert slow["status"] == "failed"
    assert slow["error"].startswith("Reading this file took longer than 2 s")
    assert worker_children(worker) == set()  # the parse process was killed and reaped

    await upload(client, headers, kb["id"], ("after.txt", b"The Dormouse fell asleep."))
    documents = {d["filename"]: d for d in await wait_documents(client, headers, kb["id"])}
    assert documents["after.txt"]["status"] == "ready", documents["after.txt"]["error"]


async def test_uploads_and_searches_take_from_the_callers_rate_limit(client, staff, monkeypatch):
    monkeypatch.setenv("STRATA_RATE_LIMIT_PER_MINUTE", "2")
    get_settings.cache_clear()
    try:
        headers = await sign_in(client, "staff@x.io")
        kb = await create_kb(client, headers)
        assert (await upload(client, headers, kb["id"], ("a.txt", b"One."))).status_code == 202
        assert (await client.post("/api/v1/search", headers=headers, json={"query": "one"})).status_code == 200
        refused = await upload(client, headers, kb["id"], ("b.txt", b"Two."))
        assert refused.status_code == 429 and "retry-after" in refused.headers
        assert (await client.post("/api/v1/search", headers=headers, json={"query": "one"})).status_code == 429
        listed = (await client.get(f"/api/v1/knowledge/{kb['id']}/documents", headers=headers)).json()
        assert [d["filename"] for d in listed] == ["a.txt"]
    finally:
        monkeypatch.delenv("STRATA_RATE_LIMIT_PER_MINUTE")
        get_settings.cache_clear()


async def test_a_chroma_outage_is_reported_without_its_address(client, staff, monkeypatch):
    monkeypatch.setenv("STRATA_CHROMA_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    get_settings.cache_clear()
    get_chroma.cache_clear()
    try:
        headers = await sign_in(client, "staff@x.io")
        refused = await client.post("/api/v1/knowledge", headers=headers, json={"name": "Books"})
        assert refused.status_code == 503
        assert refused.json()["detail"] == "The vector store (Chroma) is unreachable; try again shortly."
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        get_chroma.cache_clear()


@pytest.mark.parametrize("name", ["Über", "ÀÉÎ handbook", "Strata"])
async def test_a_name_in_use_is_a_conflict_whatever_its_letters(client, staff, name):
    """Found by the API fuzz test: SQLite's lower() leaves non-ASCII letters alone, so a
    Python-lowered lookup missed an identical name and the unique index answered with a 500."""
    headers = await sign_in(client, staff.email)
    first = await client.post("/api/v1/knowledge", headers=headers, json={"name": name, "reader_roles": ["staff"]})
    assert first.status_code == 201, first.text
    other = await client.post("/api/v1/knowledge", headers=headers, json={"name": "Other", "reader_roles": ["staff"]})
    for response in (
        await client.post("/api/v1/knowledge", headers=headers, json={"name": name, "reader_roles": ["staff"]}),
        await client.patch(f"/api/v1/knowledge/{other.json()['id']}", headers=headers, json={"name": f" {name} "}),
    ):
        assert response.status_code == 409, response.text
        assert "already exists" in response.json()["detail"]
