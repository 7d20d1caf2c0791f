"""The training.run job's failures, run by the job runtime in this process (jobs.runtime.execute_job,
as a worker calls it): a run its rows cannot train fails with the reason on the run and its job,
and registers nothing."""

from sqlmodel import select

from app.core.db import session_scope
from app.predict.tables import RegisteredModel
from jobs import service as jobs_service
from jobs.runtime import execute_job
from tests.training.conftest import as_csv, sample, start, upload

WORKER = {"job_try": 1, "worker_id": "in-test"}


async def test_labels_too_rare_to_split_fail_the_run_with_the_reason_and_register_nothing(
    client, staff_headers, bbc_sample
):
    texts, labels = sample(bbc_sample.texts, bbc_sample.labels, rows=40)
    rows = [*zip(texts, labels, strict=True), (texts[0], "weather"), (texts[1], "weather")]
    await upload(client, staff_headers, "news", as_csv(rows))
    response = await start(
        client, staff_headers, dataset="news", text_column="text", label_column="topic", model_name="topics"
    )
    assert response.status_code == 202, response.text
    run = response.json()
    await execute_job(dict(WORKER), run["job_id"])

    failed = (await client.get(f"/api/v1/training-runs/{run['id']}", headers=staff_headers)).json()
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "The rows cannot be trained on: too few rows to split and cross-validate these labels (each needs at least 3"
        " in the training part): 'weather' (2)."
    )
    assert failed["rows"]["used"] == 42 and failed["model_version"] is None and failed["duration_seconds"] > 0
    job = (await client.get(f"/api/v1/jobs/{run['job_id']}", headers=staff_headers)).json()
    assert job["error"] == failed["error"] and job["result"]["training_run_id"] == run["id"]
    with session_scope() as db_session:
        assert db_session.exec(select(RegisteredModel).where(RegisteredModel.name == "topics")).first() is None


async def test_a_training_job_without_its_run_fails_saying_where_runs_start(db, redis_url, staff):
    job = await jobs_service.enqueue(actor=staff, kind="training.run", params={}, max_attempts=1)
    await execute_job(dict(WORKER), job.id)
    with session_scope() as db_session:
        failed = jobs_service.get_job(db_session=db_session, job_id=job.id)
    assert failed.status == "failed"
    assert failed.error == "Training runs start from the Experiments page or POST /api/v1/training-runs."
