"""The alerts routes: who may list and acknowledge, unknown ids, bad thresholds."""

import pytest

from tests.alerts.test_open_and_acknowledge import model_ids, open_accuracy  # noqa: F401 - shared fixture
from tests.conftest import sign_in


@pytest.fixture
async def headers(client, staff, viewer) -> dict[str, dict]:
    return {"staff": await sign_in(client, staff.email), "viewer": await sign_in(client, viewer.email)}


async def test_viewers_read_open_alerts_and_staff_acknowledge_them(client, headers, model_ids):  # noqa: F811
    alert = open_accuracy(model_ids, 0.4)
    url = f"/api/v1/alerts/{alert.id}/acknowledge"
    [shown] = (await client.get("/api/v1/alerts?open=true", headers=headers["viewer"])).json()
    assert (shown["id"], shown["model"], shown["open"]) == (alert.id, "churn", True)
    history = await client.get("/api/v1/alerts", headers=headers["viewer"])
    assert history.status_code == 403 and "staff" in history.json()["detail"]
    refused = await client.post(url, headers=headers["viewer"])
    assert refused.status_code == 403

    done = await client.post(url, headers=headers["staff"])
    assert done.status_code == 200, done.text
    assert (done.json()["open"], done.json()["acknowledged_by"]) == (False, "staff@x.io")
    assert (await client.get("/api/v1/alerts?open=true", headers=headers["viewer"])).json() == []
    [past] = (await client.get("/api/v1/alerts?model=churn", headers=headers["staff"])).json()
    assert past["acknowledged_at"] is not None
    again = await client.post(url, headers=headers["staff"])
    assert again.status_code == 409 and "already acknowledged by staff@x.io" in again.json()["detail"]


async def test_unknown_alerts_and_models_are_404_and_bad_thresholds_422(client, headers, model_ids):  # noqa: F811
    unknown = await client.post("/api/v1/alerts/424242/acknowledge", headers=headers["staff"])
    assert unknown.status_code == 404 and unknown.json()["detail"] == "No alert with id 424242."
    assert (await client.get("/api/v1/alerts?model=nope", headers=headers["staff"])).status_code == 404
    assert (await client.get("/api/v1/models/nope/alert-thresholds", headers=headers["staff"])).status_code == 404

    good = {
        "min_accuracy": 0.8,
        "min_feedback": 20,
        "max_error_rate": None,
        "min_predictions": 50,
        "window_minutes": 120,
    }
    bad = await client.put(
        "/api/v1/models/churn/alert-thresholds", headers=headers["staff"], json={**good, "min_accuracy": 1.5}
    )
    assert bad.status_code == 422 and "min_accuracy" in str(bad.json()["detail"])
    viewer = await client.put("/api/v1/models/churn/alert-thresholds", headers=headers["viewer"], json=good)
    assert viewer.status_code == 403
    saved = await client.put("/api/v1/models/churn/alert-thresholds", headers=headers["staff"], json=good)
    assert saved.status_code == 200
    read = (await client.get("/api/v1/models/churn/alert-thresholds", headers=headers["staff"])).json()
    assert {key: read[key] for key in good} == good and read["customised"] is True
