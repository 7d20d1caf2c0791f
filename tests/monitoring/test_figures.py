"""Monitoring figures and feedback, from predictions made through the real predict API."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from app.core.db import session_scope
from app.core.errors import Forbidden, InvalidInput, NotFound
from app.monitoring import service
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel
from models.classifier import CLASSIFIER_NAME
from tests.conftest import sign_in

pytestmark = pytest.mark.usefixtures("builtin_models")

BUSINESS = "Shares fell sharply after the bank reported lower quarterly profits and weak sales."
SPORT = "The striker scored twice as the club won the cup final in extra time."
URL = f"/api/v1/models/{CLASSIFIER_NAME}/monitoring"


@pytest.fixture
def log_everything(settings, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_sample_rate", 1.0)


async def logged_rows(count: int) -> None:
    """Waits for the prediction log's once-a-second bulk write to reach `count` rows."""
    for _ in range(100):
        with session_scope() as db_session:
            if len(db_session.execute(select(PredictionLog.id)).all()) >= count:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the prediction log never reached {count} rows")


def classifier_version_id() -> int:
    with session_scope() as db_session:
        return db_session.execute(
            select(ModelVersion.id).join(RegisteredModel).where(RegisteredModel.name == CLASSIFIER_NAME)
        ).scalar_one()


@pytest.mark.usefixtures("log_everything")
async def test_figures_and_accuracy_follow_the_predictions_and_feedback_made(client, staff, viewer):
    user = await sign_in(client, viewer.email)
    first = await client.post(
        f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=user, json={"inputs": [BUSINESS, SPORT]}
    )
    again = await client.post(f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=user, json={"inputs": BUSINESS})
    assert again.json()["cached"] == 1
    results = first.json()["results"] + again.json()["results"]
    assert [r["label"] for r in results] == ["business", "sport", "business"]
    ids = [r["prediction_id"] for r in results]
    assert all(ids) and len(set(ids)) == 3
    await logged_rows(3)

    right = await client.post(f"/api/v1/predictions/{ids[0]}/feedback", headers=user, json={"label": "business"})
    assert right.status_code == 200, right.text
    assert right.json() == {
        "prediction_id": ids[0],
        "model": CLASSIFIER_NAME,
        "version": 1,
        "predicted_label": "business",
        "label": "business",
        "correct": True,
    }
    wrong = await client.post(f"/api/v1/predictions/{ids[1]}/feedback", headers=user, json={"label": "tech"})
    assert wrong.json()["correct"] is False

    figures = (await client.get(URL, headers=await sign_in(client, staff.email), params={"period": "hour"})).json()
    totals = figures["totals"]
    assert (totals["predictions"], totals["errors"], totals["cache_hits"]) == (3, 0, 1)
    assert totals["cache_hit_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert totals["labels"] == {"business": 2, "sport": 1}
    assert (totals["feedback"], totals["correct"], totals["accuracy"]) == (2, 1, 0.5)
    assert 0 < totals["latency_p50_ms"] <= totals["latency_p95_ms"]
    assert figures["bucket_seconds"] == 60 and len(figures["buckets"]) in (60, 61)
    busy = [b for b in figures["buckets"] if b["predictions"]]
    assert sum(b["predictions"] for b in busy) == 3 and sum(b["feedback"] for b in busy) == 2
    assert sum(b["count"] for b in figures["confidence"]) == 3

    # Feedback changes the accuracy: the wrong one corrected to what was predicted.
    await client.post(f"/api/v1/predictions/{ids[1]}/feedback", headers=user, json={"label": "sport"})
    figures = (await client.get(URL, headers=await sign_in(client, staff.email))).json()
    assert (figures["totals"]["feedback"], figures["totals"]["accuracy"]) == (2, 1.0)


async def test_feedback_names_a_known_prediction_and_one_of_its_labels(client, viewer, log_everything):
    user = await sign_in(client, viewer.email)
    response = await client.post(f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=user, json={"inputs": SPORT})
    prediction_id = response.json()["results"][0]["prediction_id"]
    await logged_rows(1)

    bad_label = await client.post(f"/api/v1/predictions/{prediction_id}/feedback", headers=user, json={"label": "cats"})
    assert bad_label.status_code == 422 and "'cats' is not a label" in bad_label.json()["detail"]
    assert "sport" in bad_label.json()["detail"]
    unknown = await client.post("/api/v1/predictions/nope/feedback", headers=user, json={"label": "sport"})
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["detail"]
    client.cookies.clear()  # signing in also set the session cookie
    anonymous = await client.post(f"/api/v1/predictions/{prediction_id}/feedback", json={"label": "sport"})
    assert anonymous.status_code == 401


async def test_an_unsampled_prediction_returns_no_id(client, settings, viewer, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_sample_rate", 0.0)
    user = await sign_in(client, viewer.email)
    response = await client.post(f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=user, json={"inputs": SPORT})
    assert response.json()["results"][0]["prediction_id"] is None


async def test_monitoring_is_for_staff_and_names_what_is_missing(client, staff, viewer):
    refused = await client.get(URL, headers=await sign_in(client, viewer.email))
    assert refused.status_code == 403
    staff_headers = await sign_in(client, staff.email)
    missing = await client.get("/api/v1/models/nothing/monitoring", headers=staff_headers)
    assert missing.status_code == 404 and "'nothing'" in missing.json()["detail"]
    no_version = await client.get(URL, headers=staff_headers, params={"version": 9})
    assert no_version.status_code == 404 and "version 9" in no_version.json()["detail"]
    backwards = await client.get(
        URL, headers=staff_headers, params={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    )
    assert backwards.status_code == 422 and "must be before" in backwards.json()["detail"]
    with session_scope() as db_session, pytest.raises(Forbidden):
        service.figures(db_session=db_session, actor=viewer, model_name=CLASSIFIER_NAME)


def test_the_period_and_version_choose_the_rows(staff):
    version_id = classifier_version_id()
    now = datetime.now(UTC)
    rows = [
        {"at": now - timedelta(minutes=10), "label": "sport"},
        {"at": now - timedelta(hours=5), "label": "tech"},
        {"at": now - timedelta(days=3), "label": "politics"},
        {"at": now - timedelta(minutes=20), "label": None, "error": "RuntimeError"},
    ]
    with session_scope() as db_session:
        db_session.execute(
            insert(PredictionLog.__table__),
            [
                {"version_id": version_id, "caller": "user:1", "latency_ms": 5.0, "input_sha256": "0" * 64}
                | {"error": None}
                | row
                for row in rows
            ],
        )
    with session_scope() as db_session:

        def labels(**period) -> dict[str, int]:
            figures = service.figures(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, **period)
            return figures.totals.labels, figures.totals.errors

        assert labels(period="hour") == ({"sport": 1}, 1)
        assert labels(period="day") == ({"sport": 1, "tech": 1}, 1)
        assert labels(period="week") == ({"sport": 1, "tech": 1, "politics": 1}, 1)
        assert labels(since=now - timedelta(days=4), until=now - timedelta(days=2)) == ({"politics": 1}, 0)
        assert labels(version_number=1, period="day") == ({"sport": 1, "tech": 1}, 1)
        with pytest.raises(InvalidInput, match="either a period or since"):
            labels(period="day", since=now)
        with pytest.raises(NotFound):
            labels(version_number=2)


def test_fifty_thousand_rows_are_aggregated_by_the_database(staff):
    """The figures of a known 50,000-row log: counts, label mix, cache, feedback, confidence
    bins and latency percentiles (exact on PostgreSQL, within a 10% bin on SQLite)."""
    version_id = classifier_version_id()
    start = datetime.now(UTC) - timedelta(hours=20)
    labels = ["business", "sport", "tech"]
    rows = [
        {
            "at": start + timedelta(seconds=i),
            "version_id": version_id,
            "caller": "key:1",
            "latency_ms": float(i % 100 + 1),
            "label": labels[i % 3],
            "confidence": (i % 10) / 10 + 0.05,
            "input_sha256": "0" * 64,
            "cached": i % 4 == 0,
            "error": None,
            "feedback_label": None if i % 5 else (labels[i % 3] if i % 10 == 0 else "politics"),
        }
        for i in range(50_000)
    ]
    with session_scope() as db_session:
        db_session.execute(insert(PredictionLog.__table__), rows)
    with session_scope() as db_session:
        figures = service.figures(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, period="day")
    totals = figures.totals
    assert (totals.predictions, totals.cache_hits, totals.errors) == (50_000, 12_500, 0)
    assert totals.labels == {"business": 16_667, "sport": 16_667, "tech": 16_666}
    assert (totals.feedback, totals.correct, totals.accuracy) == (10_000, 5_000, 0.5)
    assert [b.count for b in figures.confidence] == [5_000] * 10
    assert totals.latency_p50_ms == pytest.approx(50.5, rel=0.1)
    assert totals.latency_p95_ms == pytest.approx(95.05, rel=0.1)
    assert figures.bucket_seconds == 3600 and len(figures.buckets) in (24, 25)
    assert sum(b.predictions for b in figures.buckets) == 50_000
    full_hour = next(b for b in figures.buckets if b.predictions == 3600)
    assert sum(full_hour.labels.values()) == 3600 and full_hour.cache_hit_rate == 0.25
