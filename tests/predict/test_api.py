"""The predict and registry API, over HTTP: what a script with an API key sees."""

import httpx
import pytest

from app.api import build_api
from app.auth import service as auth_service
from app.core.db import session_scope
from app.core.settings import get_settings
from models.classifier import CLASSIFIER_NAME
from models.manifest import EMBEDDER_NAME

pytestmark = pytest.mark.usefixtures("builtin_models")

LABELS = {
    "labels": [
        {"name": "urgent", "description": "needs action today, outage, broken, emergency"},
        {"name": "routine", "description": "question, information, can wait, no hurry"},
    ]
}


@pytest.fixture
async def client():
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        yield client


def api_key(user) -> dict:
    with session_scope() as db_session:
        key, plaintext = auth_service.create_api_key(
            db_session=db_session, actor=auth_service.SYSTEM, user_id=user.id, name="script"
        )
    return {"Authorization": f"Bearer {plaintext}"}


async def test_models_are_listed_and_predict_answers_one_or_many_inputs(client, viewer):
    headers = api_key(viewer)
    models = (await client.get("/api/v1/models", headers=headers)).json()
    assert {m["name"]: m["production_version"] for m in models} == {CLASSIFIER_NAME: 1, EMBEDDER_NAME: 1}

    one = await client.post(
        f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=headers, json={"inputs": "The election result is in."}
    )
    assert one.status_code == 200, one.text
    assert one.json()["version"] == 1 and one.json()["results"][0]["label"] == "politics"
    many = await client.post(
        f"/api/v1/models/{CLASSIFIER_NAME}/predict",
        headers=headers,
        json={"inputs": ["The election result is in.", "Goal in the last minute!"]},
    )
    assert [r["label"] for r in many.json()["results"]] == ["politics", "sport"]
    assert many.json()["cached"] == 1


async def test_bad_predict_requests_get_clear_errors(client, viewer):
    headers = api_key(viewer)
    empty = await client.post(f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=headers, json={"inputs": []})
    assert empty.status_code == 422 and "at least one" in empty.json()["detail"]
    unknown = await client.post("/api/v1/models/nope/predict", headers=headers, json={"inputs": ["x"]})
    assert unknown.status_code == 404 and "nope" in unknown.json()["detail"]
    pinned = await client.post(
        f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=headers, json={"inputs": ["x"], "version": 9}
    )
    assert pinned.status_code == 404 and "version 9" in pinned.json()["detail"]


async def test_staff_run_a_canary_promote_and_roll_back_over_the_api(client, staff):
    headers = api_key(staff)
    created = await client.post(f"/api/v1/models/{CLASSIFIER_NAME}/versions", headers=headers, json=LABELS)
    assert created.status_code == 201 and created.json()["stage"] == "staging"
    number = created.json()["number"]

    canary = await client.put(
        f"/api/v1/models/{CLASSIFIER_NAME}/versions/{number}/canary", headers=headers, json={"percent": 100}
    )
    assert canary.json()["canary_version"] == number and canary.json()["canary_percent"] == 100
    answer = await client.post(
        f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=headers, json={"inputs": ["The server is down!"]}
    )
    assert answer.json()["version"] == number and answer.json()["results"][0]["label"] == "urgent"

    promoted = await client.post(f"/api/v1/models/{CLASSIFIER_NAME}/versions/{number}/promote", headers=headers)
    assert promoted.json()["production_version"] == number and promoted.json()["canary_version"] is None
    rolled_back = await client.post(f"/api/v1/models/{CLASSIFIER_NAME}/rollback", headers=headers)
    assert rolled_back.json()["production_version"] == 1

    versions = (await client.get(f"/api/v1/models/{CLASSIFIER_NAME}/versions", headers=headers)).json()
    assert [(v["number"], v["stage"]) for v in versions] == [(number, "archived"), (1, "production")]
    assert versions[0]["served"] == 1
    events = (await client.get(f"/api/v1/models/{CLASSIFIER_NAME}/events", headers=headers)).json()
    assert [e["action"] for e in events[:4]] == ["rollback", "promote", "set_canary", "create_version"]
    assert {e["user"] for e in events[:4]} == {staff.email}


async def test_a_viewer_cannot_change_the_registry_over_the_api(client, viewer):
    headers = api_key(viewer)
    attempts = [
        client.post(f"/api/v1/models/{CLASSIFIER_NAME}/versions", headers=headers, json=LABELS),
        client.put(f"/api/v1/models/{CLASSIFIER_NAME}/versions/1/canary", headers=headers, json={"percent": 10}),
        client.post(f"/api/v1/models/{CLASSIFIER_NAME}/versions/1/promote", headers=headers),
        client.post(f"/api/v1/models/{CLASSIFIER_NAME}/rollback", headers=headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403 and "staff" in response.json()["detail"]
    versions = (await client.get(f"/api/v1/models/{CLASSIFIER_NAME}/versions", headers=headers)).json()
    assert len(versions) == 1
    events = (await client.get(f"/api/v1/models/{CLASSIFIER_NAME}/events", headers=headers)).json()
    assert [e["action"] for e in events] == ["register"]


async def test_over_the_rate_limit_is_a_429_with_retry_after_per_caller(client, viewer, staff, monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limit_per_minute", 3)
    viewer_key, staff_key = api_key(viewer), api_key(staff)
    url = f"/api/v1/models/{CLASSIFIER_NAME}/predict"
    statuses = [(await client.post(url, headers=viewer_key, json={"inputs": ["hi"]})).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = await client.post(url, headers=viewer_key, json={"inputs": ["hi"]})
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 20 and "3 requests a minute" in refused.json()["detail"]
    # Another key has its own budget.
    assert (await client.post(url, headers=staff_key, json={"inputs": ["hi"]})).status_code == 200


async def test_an_admin_sets_one_keys_limit(client, make_user, viewer, monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limit_per_minute", 2)
    admin = make_user("admin@x.io", role="admin")
    admin_key = api_key(admin)
    with session_scope() as db_session:
        key, plaintext = auth_service.create_api_key(
            db_session=db_session, actor=auth_service.SYSTEM, user_id=viewer.id, name="bulk"
        )
    url = f"/api/v1/models/{CLASSIFIER_NAME}/predict"
    viewer_key = {"Authorization": f"Bearer {plaintext}"}
    refused = await client.put(
        f"/api/v1/api-keys/{key.id}/rate-limit", headers=viewer_key, json={"requests_per_minute": 5}
    )
    assert refused.status_code == 403
    changed = await client.put(
        f"/api/v1/api-keys/{key.id}/rate-limit", headers=admin_key, json={"requests_per_minute": 5}
    )
    assert changed.status_code == 204
    statuses = [(await client.post(url, headers=viewer_key, json={"inputs": ["hi"]})).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
