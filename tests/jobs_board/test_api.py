"""The Jobs API shows and controls only what the caller may read, and internal job kinds
(an upload's ingestion) are never started or retried by hand."""

import pytest

import app.job_kinds  # noqa: F401 - registers the job kinds, as the web and worker do
from app.core.db import session_scope
from app.knowledge.tables import Document, KnowledgeBase
from jobs.tables import Job, JobStatus
from tests.conftest import sign_in

ADMIN = ("admin@x.io", "password-123")


def _failed_ingestion(*, knowledge_base: str, reader_roles: list[str]) -> tuple[int, str]:
    """A document of a knowledge base and its failed ingestion job, as an upload leaves them."""
    with session_scope() as db_session:
        kb = KnowledgeBase(name=knowledge_base, reader_roles=reader_roles, collection=f"kb-{knowledge_base.lower()}")
        db_session.add(kb)
        db_session.flush()
        document = Document(
            knowledge_base_id=kb.id, filename="minutes.txt", size_bytes=5, sha256="0" * 64, stored_path="x/minutes.txt"
        )
        db_session.add(document)
        db_session.flush()
        job = Job(
            id=f"job{document.id:029d}",
            kind="ingest_document",
            params={"document_id": document.id},
            status=JobStatus.failed.value,
            result={"filename": "minutes.txt", "chunks": 3},
        )
        db_session.add(job)
        return document.id, job.id


@pytest.fixture
def jobs_on_two_knowledge_bases(make_user, staff):
    make_user(ADMIN[0], role="admin")
    _, secret_job = _failed_ingestion(knowledge_base="Board", reader_roles=[])
    _, open_job = _failed_ingestion(knowledge_base="Handbook", reader_roles=["viewer", "staff"])
    return secret_job, open_job


async def test_staff_do_not_see_or_control_jobs_of_knowledge_bases_they_may_not_read(
    client, staff, jobs_on_two_knowledge_bases
):
    secret_job, open_job = jobs_on_two_knowledge_bases
    headers = await sign_in(client, staff.email)

    listed = {job["id"] for job in (await client.get("/api/v1/jobs", headers=headers)).json()}
    assert open_job in listed and secret_job not in listed

    for method, path in (
        ("GET", f"/api/v1/jobs/{secret_job}"),
        ("POST", f"/api/v1/jobs/{secret_job}/cancel"),
        ("POST", f"/api/v1/jobs/{secret_job}/retry"),
    ):
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 404, (path, response.text)
        assert "minutes" not in response.text

    admin = await sign_in(client, *ADMIN)
    assert secret_job in {job["id"] for job in (await client.get("/api/v1/jobs", headers=admin)).json()}
    assert (await client.get(f"/api/v1/jobs/{secret_job}", headers=admin)).json()["result"]["chunks"] == 3


async def test_internal_job_kinds_cannot_be_started_or_retried_by_hand(client, staff, jobs_on_two_knowledge_bases):
    _, open_job = jobs_on_two_knowledge_bases
    headers = await sign_in(client, staff.email)
    admin = await sign_in(client, *ADMIN)

    kinds = {kind["kind"] for kind in (await client.get("/api/v1/jobs/kinds", headers=headers)).json()}
    assert kinds == {"verify_models"}

    for who in (headers, admin):
        started = await client.post(
            "/api/v1/jobs", headers=who, json={"kind": "ingest_document", "params": {"document_id": 1}}
        )
        assert started.status_code == 422 and "started by Strata itself" in started.json()["detail"]
        retried = await client.post(f"/api/v1/jobs/{open_job}/retry", headers=who)
        assert retried.status_code == 422 and "started by Strata itself" in retried.json()["detail"]
    with session_scope() as db_session:
        assert db_session.get(Job, open_job).status == JobStatus.failed.value


async def test_viewers_are_refused_the_jobs_api(client, viewer, jobs_on_two_knowledge_bases):
    headers = await sign_in(client, viewer.email)
    assert (await client.get("/api/v1/jobs", headers=headers)).status_code == 403
    assert (await client.get("/api/v1/jobs/kinds", headers=headers)).status_code == 403
    _, open_job = jobs_on_two_knowledge_bases
    assert (await client.post(f"/api/v1/jobs/{open_job}/cancel", headers=headers)).status_code == 403


async def test_starting_and_retrying_jobs_count_against_the_callers_rate_limit(
    client, staff, jobs_on_two_knowledge_bases, monkeypatch
):
    from app.core.settings import get_settings

    _, open_job = jobs_on_two_knowledge_bases
    headers = await sign_in(client, staff.email)
    monkeypatch.setattr(get_settings(), "rate_limit_per_minute", 1)
    first = await client.post("/api/v1/jobs", headers=headers, json={"kind": "verify_models"})
    assert first.status_code == 202, first.text
    for response in (
        await client.post("/api/v1/jobs", headers=headers, json={"kind": "verify_models"}),
        await client.post(f"/api/v1/jobs/{first.json()['id']}/retry", headers=headers),
    ):
        assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1, response.text
