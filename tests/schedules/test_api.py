"""/api/v1/schedules as a client uses it: staff create, list, pause, resume and delete;
viewers are refused; every mistake is a message naming what is wrong."""

from datetime import datetime, timedelta

import pytest

from app.core.time import utcnow
from app.schedules.cron import next_run
from tests.conftest import sign_in
from tests.schedules.conftest import DATASET, batch_params, training_params


@pytest.fixture
async def staff_headers(client, staff) -> dict:
    return await sign_in(client, staff.email)


@pytest.fixture
async def viewer_headers(client, viewer) -> dict:
    return await sign_in(client, viewer.email)


async def create(client, headers, **changes):
    body = {"name": "nightly", "action": "batch", "cron": "30 2 * * *", "params": batch_params(), **changes}
    return await client.post("/api/v1/schedules", headers=headers, json=body)


async def test_staff_create_list_pause_resume_and_delete_a_schedule(client, staff_headers, reviews, classifier):
    before = utcnow()
    response = await create(client, staff_headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "nightly" and created["action"] == "batch" and created["cron"] == "30 2 * * *"
    assert created["params"] == {**batch_params(), "model_version": None}
    assert created["created_by"] == "staff@x.io" and created["paused"] is False
    assert created["last_outcome"] is None and created["last_job_id"] is None
    next_at = datetime.fromisoformat(created["next_run_at"])
    assert next_at.utcoffset() == timedelta(0)  # UTC
    assert (next_at.hour, next_at.minute) == (2, 30) and before < next_at <= before + timedelta(days=1)

    listed = (await client.get("/api/v1/schedules", headers=staff_headers)).json()
    assert [(item["id"], item["next_run_at"]) for item in listed] == [(created["id"], created["next_run_at"])]

    paused = await client.post(f"/api/v1/schedules/{created['id']}/pause", headers=staff_headers)
    assert paused.status_code == 200 and paused.json()["paused"] is True and paused.json()["next_run_at"] is None

    before = utcnow()
    resumed = await client.post(f"/api/v1/schedules/{created['id']}/resume", headers=staff_headers)
    assert resumed.status_code == 200 and resumed.json()["paused"] is False
    # The next 02:30 after the resume (read on either side of it, in case 02:30 fell in between).
    assert datetime.fromisoformat(resumed.json()["next_run_at"]) in {
        next_run("30 2 * * *", before),
        next_run("30 2 * * *", utcnow()),
    }

    deleted = await client.delete(f"/api/v1/schedules/{created['id']}", headers=staff_headers)
    assert deleted.status_code == 204
    assert (await client.get("/api/v1/schedules", headers=staff_headers)).json() == []
    missing = await client.post(f"/api/v1/schedules/{created['id']}/pause", headers=staff_headers)
    assert missing.status_code == 404 and missing.json()["detail"] == f"No schedule with id {created['id']}."


async def test_a_training_schedule_keeps_its_arguments_with_their_defaults(client, staff_headers, reviews):
    response = await create(client, staff_headers, action="training", cron="0 4 * * sun", params=training_params())
    assert response.status_code == 201, response.text
    assert response.json()["params"] == {**training_params(), "holdout_fraction": 0.2, "seed": 0}
    assert datetime.fromisoformat(response.json()["next_run_at"]).weekday() == 6  # Sunday


async def test_viewers_may_not_read_or_change_schedules(client, staff_headers, viewer_headers, reviews, classifier):
    schedule_id = (await create(client, staff_headers)).json()["id"]
    refused = [
        await client.get("/api/v1/schedules", headers=viewer_headers),
        await create(client, viewer_headers, name="mine"),
        await client.post(f"/api/v1/schedules/{schedule_id}/pause", headers=viewer_headers),
        await client.post(f"/api/v1/schedules/{schedule_id}/resume", headers=viewer_headers),
        await client.delete(f"/api/v1/schedules/{schedule_id}", headers=viewer_headers),
    ]
    assert [response.status_code for response in refused] == [403] * 5
    assert refused[0].json()["detail"] == "This needs the staff role; you are viewer."
    [still] = (await client.get("/api/v1/schedules", headers=staff_headers)).json()
    assert still["name"] == "nightly" and still["paused"] is False


async def test_the_routes_publish_the_staff_role(client):
    document = (await client.get("/api/openapi.json")).json()
    roles = {
        (method, path): operation["x-strata-minimum-role"]
        for path, operations in document["paths"].items()
        if path.startswith("/api/v1/schedules")
        for method, operation in operations.items()
    }
    assert set(roles.values()) == {"staff"} and len(roles) == 6


REFUSALS = [
    ({"cron": "0 25 * * *"}, "The hour field's '25' is out of range: hour values are 0-23."),
    ({"cron": "0 3 * *"}, "has 4"),
    ({"params": batch_params(dataset="nope")}, "There is no dataset 'nope'."),
    ({"params": batch_params(text_column="body")}, "has no column 'body'"),
    ({"params": batch_params(model="no-such-model")}, "no-such-model"),
    ({"params": {**batch_params(), "version": 1}}, "always runs on the newest version"),
    ({"params": {**batch_params(), "seed": 1}}, "A batch schedule does not take 'seed'"),
    ({"params": {"dataset": DATASET}}, "needs 'text_column', 'model'"),
    ({"params": batch_params(model_version="two")}, "The parameter 'model_version' is a number"),
    ({"params": batch_params(model_version=10**12)}, "'model_version' is a whole number from 0 to 2147483647"),
    ({"params": batch_params(model="bad\x00name")}, "'model' is a text of 1 to 300 printable characters"),
    ({"action": "training", "params": training_params(label_column="text")}, "are both 'text'"),
    ({"action": "training", "params": training_params(holdout_fraction=0.9)}, "holdout fraction"),
    ({"action": "training", "params": training_params(model_name="no spaces!")}, "A model name is"),
    ({"action": "cleanup"}, "action"),
    ({"name": "   "}, "A schedule name is 1 to 100 printable characters."),
]


async def test_a_bad_schedule_is_a_422_naming_what_is_wrong(client, staff_headers, reviews, classifier):
    for changes, message in REFUSALS:
        response = await create(client, staff_headers, **changes)
        assert response.status_code == 422, (changes, response.text)
        assert message in response.json()["detail"], changes
    assert (await client.get("/api/v1/schedules", headers=staff_headers)).json() == []


async def test_a_name_in_use_is_a_conflict(client, staff_headers, reviews, classifier):
    assert (await create(client, staff_headers)).status_code == 201
    again = await create(client, staff_headers, cron="0 5 * * *")
    assert again.status_code == 409 and again.json()["detail"] == "A schedule named 'nightly' already exists."
