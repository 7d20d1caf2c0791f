"""Accuracy and error-rate alerts from the live figures: feedback given through the API moves
the live accuracy, and crossing a model's thresholds opens an alert."""

from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from app.alerts import checks
from app.core.db import session_scope
from app.core.time import utcnow
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel
from models.classifier import CLASSIFIER_NAME
from tests.conftest import sign_in
from tests.monitoring.test_figures import BUSINESS, SPORT, logged_rows

pytestmark = pytest.mark.usefixtures("builtin_models")

TECH = "The new phone has a faster chip, a brighter screen and a battery that lasts two days."
THRESHOLDS = f"/api/v1/models/{CLASSIFIER_NAME}/alert-thresholds"
CHECK = f"/api/v1/models/{CLASSIFIER_NAME}/alert-check"


@pytest.fixture
def log_everything(settings, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_sample_rate", 1.0)


def classifier_version_id() -> int:
    with session_scope() as db_session:
        return db_session.execute(
            select(ModelVersion.id).join(RegisteredModel).where(RegisteredModel.name == CLASSIFIER_NAME)
        ).scalar_one()


def log_predictions(count: int, failed: int, minutes_ago: int = 5) -> None:
    """`count` logged predictions of the classifier, `failed` of them failed."""
    version_id = classifier_version_id()
    at = utcnow() - timedelta(minutes=minutes_ago)
    rows = [
        {
            "at": at,
            "version_id": version_id,
            "caller": "test",
            "latency_ms": 3.0,
            "label": None if index < failed else "business",
            "confidence": None if index < failed else 0.9,
            "input_sha256": f"{index:064d}",
            "error": "ModelUnavailable" if index < failed else None,
        }
        for index in range(count)
    ]
    with session_scope() as db_session:
        db_session.execute(insert(PredictionLog), rows)


@pytest.mark.usefixtures("log_everything")
async def test_feedback_moves_the_live_accuracy_and_a_low_accuracy_opens_an_alert(client, staff, viewer):
    user = await sign_in(client, viewer.email)
    manager = await sign_in(client, staff.email)
    response = await client.post(
        f"/api/v1/models/{CLASSIFIER_NAME}/predict", headers=user, json={"inputs": [BUSINESS, SPORT, TECH]}
    )
    results = response.json()["results"]
    assert [r["label"] for r in results] == ["business", "sport", "tech"]
    ids = [r["prediction_id"] for r in results]
    await logged_rows(3)
    thresholds = {"min_accuracy": 0.6, "min_feedback": 3, "max_error_rate": None, "min_predictions": 1}
    put = await client.put(THRESHOLDS, headers=manager, json={**thresholds, "window_minutes": 60})
    assert put.status_code == 200, put.text
    assert (put.json()["customised"], put.json()["updated_by"]) == (True, staff.email)

    async def feedback(index: int, label: str) -> None:
        answer = await client.post(f"/api/v1/predictions/{ids[index]}/feedback", headers=user, json={"label": label})
        assert answer.status_code == 200, answer.text

    async def live_accuracy() -> tuple[int, float | None]:
        figures = await client.get(
            f"/api/v1/models/{CLASSIFIER_NAME}/monitoring", headers=manager, params={"period": "hour"}
        )
        totals = figures.json()["totals"]
        return totals["feedback"], totals["accuracy"]

    await feedback(0, "business")
    await feedback(1, "sport")
    assert await live_accuracy() == (2, 1.0)
    assert (await client.post(CHECK, headers=manager)).json() == []  # too little feedback yet

    await feedback(2, "business")
    assert await live_accuracy() == (3, pytest.approx(0.6667, abs=1e-4))
    assert (await client.post(CHECK, headers=manager)).json() == []  # above 60%

    await feedback(0, "sport")  # the latest feedback wins: now one of three is right
    assert await live_accuracy() == (3, pytest.approx(0.3333, abs=1e-4))
    [alert] = (await client.post(CHECK, headers=manager)).json()
    assert (alert["model"], alert["kind"], alert["statistic"], alert["open"]) == (
        CLASSIFIER_NAME,
        "accuracy",
        "accuracy",
        True,
    )
    assert (alert["value"], alert["threshold"]) == (pytest.approx(0.3333, abs=1e-4), 0.6)
    assert alert["message"].startswith("Live accuracy 33.3% (1 of 3 corrected predictions right) over the last hour")

    [shown] = (await client.get("/api/v1/alerts", headers=user, params={"open": "true"})).json()
    assert shown["id"] == alert["id"]


def test_a_high_error_rate_opens_an_alert_and_the_defaults_keep_a_healthy_model_quiet(staff):
    log_predictions(200, failed=0)
    with session_scope() as db_session:
        assert checks.check_all_models(db_session=db_session) == []
    log_predictions(60, failed=30)  # 30 of 260: 11.5%, over the default 5%
    with session_scope() as db_session:
        [alert] = checks.check_all_models(db_session=db_session)
        assert (alert.kind, alert.value, alert.threshold) == ("error_rate", pytest.approx(0.1154, abs=1e-4), 0.05)
        assert alert.message == "11.5% of predictions failed (30 of 260) over the last 24 hours, above 5.0%."
    with session_scope() as db_session:  # still crossing: the open alert is updated, not repeated
        assert checks.check_all_models(db_session=db_session) == []


def test_error_rates_outside_the_window_or_below_the_minimum_count_open_nothing(staff):
    log_predictions(200, failed=100, minutes_ago=25 * 60)
    log_predictions(50, failed=25)  # half failed, but fewer than the default 100 predictions
    with session_scope() as db_session:
        assert checks.check_all_models(db_session=db_session) == []
        thresholds = checks.get_thresholds(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)
    assert (thresholds.customised, thresholds.min_predictions, thresholds.window_minutes) == (False, 100, 1440)
