"""Knowledge base access and uploads, the Jobs board, registry changes, datasets, training runs, batch jobs and schedules:
each change done through the real route leaves an entry with who, from where, and old -> new."""

import io

import pytest

from tests.audit.conftest import by_request, entries, only
from tests.schedules.conftest import DATASET, batch_params, reviews_csv


@pytest.fixture(autouse=True)
def _clean_datasets(settings):
    import shutil

    shutil.rmtree(settings.resolved_data_dir / "datasets", ignore_errors=True)


async def test_knowledge_base_access_grants_and_revocations_are_audited(client, admin_headers, chroma_server):
    created = await client.post(
        "/api/v1/knowledge", headers=admin_headers, json={"name": "Policies", "reader_roles": ["staff"]}
    )
    assert created.status_code == 201, created.text
    kb = created.json()["id"]
    granted = await client.patch(
        f"/api/v1/knowledge/{kb}", headers=admin_headers, json={"reader_roles": ["staff", "viewer"]}
    )
    assert granted.status_code == 200
    revoked = await client.patch(f"/api/v1/knowledge/{kb}", headers=admin_headers, json={"reader_roles": []})
    assert revoked.status_code == 200
    assert (await client.delete(f"/api/v1/knowledge/{kb}", headers=admin_headers)).status_code == 204

    made = only("knowledge_base.created")
    by_request(made, "admin@x.io")
    assert made.new_values == {"name": "Policies", "reader_roles": ["staff"]}
    access = entries("knowledge_base.access_set")
    assert [(e.old_values, e.new_values) for e in access] == [
        ({"reader_roles": ["staff"]}, {"reader_roles": ["viewer", "staff"]}),
        ({"reader_roles": ["viewer", "staff"]}, {"reader_roles": []}),
    ]
    by_request(access[1], "admin@x.io")
    assert access[0].target == "Policies" and access[0].target_id == str(kb)
    assert only("knowledge_base.deleted").old_values["reader_roles"] == []


async def test_registry_changes_are_audited(client, staff_headers, classifier):
    created = await client.post(
        f"/api/v1/models/{classifier}/versions",
        headers=staff_headers,
        json={"labels": [{"name": "yes", "description": "agrees"}, {"name": "no", "description": "refuses"}]},
    )
    assert created.status_code == 201, created.text
    canary = await client.put(
        f"/api/v1/models/{classifier}/versions/2/canary", headers=staff_headers, json={"percent": 10}
    )
    assert canary.status_code == 200
    assert (
        await client.post(f"/api/v1/models/{classifier}/versions/2/promote", headers=staff_headers)
    ).status_code == 200
    assert (await client.post(f"/api/v1/models/{classifier}/rollback", headers=staff_headers)).status_code == 200

    made = only("model.create_version")
    by_request(made, "staff@x.io")
    assert made.target == f"{classifier} version 2" and made.detail == "2 labels"
    canary_entry = only("model.set_canary")
    by_request(canary_entry, "staff@x.io")
    assert (canary_entry.old_values, canary_entry.new_values) == (
        {"canary_version": None, "canary_percent": 0},
        {"canary_version": 2, "canary_percent": 10},
    )
    promoted = only("model.promote")
    assert (promoted.old_values, promoted.new_values) == ({"production_version": 1}, {"production_version": 2})
    rolled_back = only("model.rollback")
    assert (rolled_back.old_values, rolled_back.new_values) == ({"production_version": 2}, {"production_version": 1})
    by_request(rolled_back, "staff@x.io")


async def upload(client, headers, name: str, data: bytes):
    response = await client.post(
        "/api/v1/datasets", headers=headers, data={"name": name}, files={"file": (f"{name}.csv", data)}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_datasets_training_runs_and_batch_jobs_are_audited(client, staff_headers, classifier):
    await upload(client, staff_headers, DATASET, reviews_csv())
    await upload(client, staff_headers, "scratch", reviews_csv(12))
    await upload(client, staff_headers, "scratch", reviews_csv(12, extra=" again"))
    deleted = await client.delete("/api/v1/datasets/scratch/versions/1", headers=staff_headers)
    assert deleted.status_code == 204
    assert (await client.delete("/api/v1/datasets/scratch/versions/2", headers=staff_headers)).status_code == 204

    run = await client.post(
        "/api/v1/training-runs",
        headers=staff_headers,
        json={"dataset": DATASET, "text_column": "text", "label_column": "label", "model_name": "mood"},
    )
    assert run.status_code == 202, run.text
    assert (
        await client.post(f"/api/v1/training-runs/{run.json()['id']}/cancel", headers=staff_headers)
    ).status_code == 200
    batch = await client.post(
        "/api/v1/batch-jobs",
        headers=staff_headers,
        json={"dataset": DATASET, "text_column": "text", "model": classifier},
    )
    assert batch.status_code == 202, batch.text
    assert (
        await client.post(f"/api/v1/batch-jobs/{batch.json()['id']}/cancel", headers=staff_headers)
    ).status_code == 200

    assert [e.target for e in entries("dataset.created")] == [DATASET, "scratch"]
    added = entries("dataset.version_added")
    assert [e.target for e in added] == [f"{DATASET} version 1", "scratch version 1", "scratch version 2"]
    by_request(added[0], "staff@x.io")
    assert added[0].new_values["rows"] == 40 and added[0].new_values["filename"] == f"{DATASET}.csv"
    removed = entries("dataset.version_deleted")
    assert [e.old_values["version"] for e in removed] == [1, 2]
    by_request(removed[0], "staff@x.io")
    assert only("dataset.deleted").target == "scratch"

    started = only("training_run.started")
    by_request(started, "staff@x.io")
    assert started.target_id == str(run.json()["id"])
    assert started.new_values["dataset"] == DATASET and started.new_values["model_name"] == "mood"
    cancelled = only("training_run.cancelled")
    # Queued (no worker here), so cancelling ends it at once.
    assert (cancelled.old_values, cancelled.new_values["status"]) == ({"status": "queued"}, "cancelled")
    batch_started = only("batch_job.started")
    by_request(batch_started, "staff@x.io")
    assert batch_started.new_values["model"] == classifier and batch_started.new_values["dataset"] == DATASET
    assert only("batch_job.cancelled").old_values == {"status": "queued"}


async def test_schedules_are_audited(client, staff_headers, reviews, classifier):
    created = await client.post(
        "/api/v1/schedules",
        headers=staff_headers,
        json={"name": "nightly", "action": "batch", "cron": "30 2 * * *", "params": batch_params()},
    )
    assert created.status_code == 201, created.text
    schedule = created.json()["id"]
    for change in ("pause", "resume"):
        assert (await client.post(f"/api/v1/schedules/{schedule}/{change}", headers=staff_headers)).status_code == 200
    assert (await client.delete(f"/api/v1/schedules/{schedule}", headers=staff_headers)).status_code == 204

    made = only("schedule.created")
    by_request(made, "staff@x.io")
    assert made.new_values["cron"] == "30 2 * * *" and made.new_values["params"]["dataset"] == DATASET
    assert (only("schedule.paused").old_values, only("schedule.paused").new_values) == (
        {"paused": False},
        {"paused": True},
    )
    assert only("schedule.resumed").new_values == {"paused": False}
    gone = only("schedule.deleted")
    by_request(gone, "staff@x.io")
    assert gone.target == "nightly" and gone.old_values["cron"] == "30 2 * * *"


async def test_uploaded_documents_are_audited(client, admin_headers, chroma_server):
    created = await client.post("/api/v1/knowledge", headers=admin_headers, json={"name": "Handbook"})
    kb = created.json()["id"]
    uploaded = await client.post(
        f"/api/v1/knowledge/{kb}/documents",
        headers=admin_headers,
        files=[("files", ("leave.txt", io.BytesIO(b"Staff take 25 days of leave a year.")))],
    )
    assert uploaded.status_code == 202, uploaded.text

    entry = only("document.uploaded")
    by_request(entry, "admin@x.io")
    assert entry.target == "leave.txt in Handbook"
    assert entry.target_id == str(uploaded.json()[0]["id"])
    assert entry.new_values["size_bytes"] == 35


async def test_jobs_started_cancelled_and_retried_on_the_jobs_board_are_audited(client, staff_headers):
    started = await client.post("/api/v1/jobs", headers=staff_headers, json={"kind": "verify_models"})
    job_id = started.json()["id"]
    assert (await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=staff_headers)).status_code == 200
    refused = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=staff_headers)
    assert refused.status_code == 409
    retried = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=staff_headers)

    assert [(e.action, e.target_id) for e in entries(prefix="job.")] == [
        ("job.started", job_id),
        ("job.cancel_requested", job_id),
        ("job.retried", retried.json()["id"]),
    ]
    for entry in entries(prefix="job."):
        by_request(entry, "staff@x.io")
        assert entry.target == "Verify models"
    assert only("job.retried").new_values == {"retry_of": job_id}
