"""Starting batch jobs: who may, and the clear refusals (no worker runs here: jobs stay queued)."""

import pytest
from sqlmodel import select

from app.batch.tables import BatchRun
from app.core.db import session_scope
from app.datasets.tables import DatasetLineage, LineageKind
from jobs.tables import Job
from tests.batch.conftest import MODEL, start, upload

CSV = b"id,text,score\n1,A warm and funny film.,5\n2,Dull and far too long.,1\n"


@pytest.fixture
async def reviews(client, staff_headers) -> dict:
    return await upload(client, staff_headers, "reviews", "reviews.csv", CSV)


async def test_staff_start_a_batch_on_production_and_viewers_read_it(
    client, staff_headers, viewer_headers, reviews, reviews_model
):
    started = await start(client, staff_headers, dataset="reviews", text_column="text", model=MODEL)
    assert (started["status"], started["dataset"], started["version"]) == ("queued", "reviews", 1)
    assert (started["model"], started["model_version"], started["rows_total"], started["rows_done"]) == (
        MODEL,
        1,
        2,
        0,
    )
    assert started["result"] is None
    with session_scope() as db_session:
        run = db_session.get(BatchRun, started["id"])
        job = db_session.get(Job, run.job_id)
        assert (job.kind, job.params["batch_run_id"], job.status) == ("batch.score", run.id, "queued")
        lineage = db_session.exec(select(DatasetLineage)).all()
        assert [(link.kind, link.ref_id) for link in lineage] == [(LineageKind.batch_job, str(run.id))]

    pinned = await start(
        client, staff_headers, dataset="reviews", version=1, text_column="text", model=MODEL, model_version=1
    )
    listed = await client.get("/api/v1/batch-jobs", headers=viewer_headers)
    assert listed.status_code == 200
    assert [batch["id"] for batch in listed.json()] == [pinned["id"], started["id"]]
    read = await client.get(f"/api/v1/batch-jobs/{started['id']}", headers=viewer_headers)
    assert read.status_code == 200 and read.json()["job_id"] == started["job_id"]

    refused = await client.post(
        "/api/v1/batch-jobs", headers=viewer_headers, json={"dataset": "reviews", "text_column": "text", "model": MODEL}
    )
    assert refused.status_code == 403 and "needs the staff role" in refused.json()["detail"]
    assert (await client.post(f"/api/v1/batch-jobs/{started['id']}/cancel", headers=viewer_headers)).status_code == 403
    cancelled = await client.post(f"/api/v1/batch-jobs/{started['id']}/cancel", headers=staff_headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"dataset": "nothing"}, 404, "There is no dataset 'nothing'."),
        ({"version": 7}, 404, "The dataset 'reviews' has no version 7."),
        ({"text_column": "body"}, 422, "has no column 'body'; its columns are 'id', 'text', 'score'"),
        ({"text_column": "score"}, 422, "The column 'score' holds integer values, not text; choose one of 'text'."),
        ({"model": "nobody"}, 404, "No model named 'nobody'."),
        ({"model": "no\x00body"}, 404, "No model named 'no\\x00body'."),
        ({"model_version": 9}, 404, f"Model '{MODEL}' has no version 9."),
        ({"model": "all-MiniLM-L6-v2"}, 422, "'all-MiniLM-L6-v2' is an embedder"),
    ],
)
async def test_what_cannot_be_scored_is_refused_naming_it(
    client, staff_headers, reviews, reviews_model, builtin_embedder, body, status, detail
):
    request = {"dataset": "reviews", "text_column": "text", "model": MODEL, **body}
    response = await client.post("/api/v1/batch-jobs", headers=staff_headers, json=request)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]
    with session_scope() as db_session:
        assert db_session.exec(select(BatchRun)).all() == []


async def test_a_model_without_production_needs_a_pinned_version(client, staff_headers, reviews, staff, trained):
    from app.predict import registry

    with session_scope() as db_session:
        registry.register_trained_version(
            db_session=db_session,
            actor=staff,
            model_name="staged-only",
            onnx_model=trained.onnx_model,
            labels=trained.labels,
            metrics={},
        )
    body = {"dataset": "reviews", "text_column": "text", "model": "staged-only"}
    response = await client.post("/api/v1/batch-jobs", headers=staff_headers, json=body)
    assert response.status_code == 404 and "has no production version yet" in response.json()["detail"]
    assert (
        await client.post("/api/v1/batch-jobs", headers=staff_headers, json={**body, "model_version": 1})
    ).status_code == 202


async def test_an_unknown_batch_job_is_a_404(client, viewer_headers):
    response = await client.get("/api/v1/batch-jobs/999", headers=viewer_headers)
    assert response.status_code == 404 and response.json()["detail"] == "There is no batch job 999."
