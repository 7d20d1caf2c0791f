"""The drift routes and the scheduled drift check, on short predictions made through the real
predict API (the minimum sample lowered to 12 rows a window so that they stay quick)."""

import pytest
from sqlalchemy import select

from app.audit.tables import AuditEntry
from app.core.db import session_scope
from app.core.time import utcnow
from app.monitoring.jobs import compute_due_drift
from app.predict.tables import PredictionLog
from models.classifier import CLASSIFIER_NAME
from models.manifest import EMBEDDER_NAME
from tests.conftest import sign_in
from tests.monitoring.test_drift import open_drift_alerts, predict_window, set_reference

pytestmark = pytest.mark.usefixtures("builtin_models", "small_windows")

ROWS = 12
BUSINESS = [f"Shares in the bank fell {n} percent after weak quarterly profits and sales." for n in range(ROWS)]
SPORT = [f"The striker scored {n} goals as the club won the cup final in extra time." for n in range(ROWS)]
DRIFT_URL = f"/api/v1/models/{CLASSIFIER_NAME}/drift"


@pytest.fixture
def small_windows(settings, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_sample_rate", 1.0)
    monkeypatch.setattr(settings, "drift_min_samples", ROWS)


async def business_then_sport(client, headers) -> tuple:
    start = utcnow()
    await predict_window(client, headers, BUSINESS)
    middle = utcnow()
    await predict_window(client, headers, SPORT)
    return start, middle, utcnow()


async def test_viewers_are_refused_and_unknown_models_are_404(client, staff, viewer):
    user = await sign_in(client, viewer.email)
    for method, path, body in [
        ("get", DRIFT_URL, None),
        ("post", DRIFT_URL, {}),
        ("put", f"{DRIFT_URL}-reference", {"since": "2026-01-01T00:00:00Z", "until": "2026-01-02T00:00:00Z"}),
        ("put", f"{DRIFT_URL}-thresholds", {"thresholds": {"label_psi": 0.5}}),
    ]:
        response = await client.request(method, path, headers=user, json=body)
        assert response.status_code == 403, (method, path, response.text)
    headers = await sign_in(client, staff.email)
    missing = await client.post("/api/v1/models/no-such-model/drift", headers=headers, json={})
    assert missing.status_code == 404 and "no-such-model" in missing.json()["detail"]
    no_version = await client.post(DRIFT_URL, headers=headers, json={"version": 9})
    assert no_version.status_code == 404 and "no version 9" in no_version.json()["detail"]


async def test_a_model_without_training_data_or_window_is_told_to_set_one(client, staff):
    headers = await sign_in(client, staff.email)
    response = await client.post(DRIFT_URL, headers=headers, json={})
    assert response.status_code == 409
    assert "set a reference window" in response.json()["detail"] and "drift-reference" in response.json()["detail"]
    future = await client.put(
        f"{DRIFT_URL}-reference",
        headers=headers,
        json={"since": utcnow().isoformat(), "until": "2999-01-01T00:00:00Z"},
    )
    assert future.status_code == 422 and "in the past" in future.json()["detail"]


async def test_thresholds_change_the_verdict_and_show_in_the_settings(client, staff):
    headers = await sign_in(client, staff.email)
    start, middle, end = await business_then_sport(client, headers)
    await set_reference(client, headers, start, middle)
    window = {"since": middle.isoformat(), "until": end.isoformat()}

    first = (await client.post(DRIFT_URL, headers=headers, json=window)).json()
    assert first["status"] == "drift" and "label_psi" in first["crossed"]
    assert first["thresholds"]["label_psi"] == 0.25
    assert "label_psi" in open_drift_alerts()

    raised = {name: 1.0 if name.endswith(("_js", "_ks", "_auc")) else 1000.0 for name in first["crossed"]}
    settings = await client.put(f"{DRIFT_URL}-thresholds", headers=headers, json={"thresholds": raised})
    assert settings.status_code == 200, settings.text
    assert settings.json()["overridden"] == sorted(raised) and settings.json()["thresholds"]["label_psi"] == 1000.0
    calm = (await client.post(DRIFT_URL, headers=headers, json=window)).json()
    assert (calm["status"], calm["crossed"], calm["thresholds"]["label_psi"]) == ("ok", [], 1000.0)

    reset = await client.put(f"{DRIFT_URL}-thresholds", headers=headers, json={"thresholds": {"label_psi": None}})
    assert reset.json()["thresholds"]["label_psi"] == 0.25 and "label_psi" not in reset.json()["overridden"]
    again = (await client.post(DRIFT_URL, headers=headers, json=window)).json()
    assert again["crossed"] == ["label_psi"]

    bad = await client.put(f"{DRIFT_URL}-thresholds", headers=headers, json={"thresholds": {"label_auc": 0.5}})
    assert bad.status_code == 422 and "Unknown drift statistic 'label_auc'" in bad.json()["detail"]
    too_high = await client.put(f"{DRIFT_URL}-thresholds", headers=headers, json={"thresholds": {"label_js": 2}})
    assert too_high.status_code == 422 and "at most 1" in too_high.json()["detail"]

    history = (await client.get(DRIFT_URL, headers=headers)).json()["results"]
    assert [result["status"] for result in history] == ["drift", "ok", "drift"]

    # The reference window and each threshold change are in the audit log, old -> new.
    with session_scope() as db_session:
        audited = db_session.execute(
            select(AuditEntry).where(AuditEntry.action.like("drift_%")).order_by(AuditEntry.id)
        ).scalars()
        changes = [(e.action, e.actor, e.old_values, e.new_values) for e in audited]
    assert changes[0][:3] == ("drift_reference.set", staff.email, {"since": None, "until": None})
    assert changes[0][3] == {"since": start.isoformat(), "until": middle.isoformat()}
    assert changes[1:] == [
        ("drift_thresholds.set", staff.email, {}, raised),
        ("drift_thresholds.set", staff.email, raised, {k: v for k, v in raised.items() if k != "label_psi"}),
    ]


async def test_too_few_rows_are_not_enough_data(client, staff):
    headers = await sign_in(client, staff.email)
    start = utcnow()
    await predict_window(client, headers, BUSINESS)
    middle = utcnow()
    await predict_window(client, headers, SPORT[:3])
    await set_reference(client, headers, start, middle)
    result = (await client.post(DRIFT_URL, headers=headers, json={})).json()
    assert (result["status"], result["scores"], result["current_rows"]) == ("not_enough_data", {}, 3)
    assert "at least 12" in result["message"]
    assert open_drift_alerts() == set()


async def test_the_scheduled_check_computes_production_versions_once_an_interval(client, staff):
    headers = await sign_in(client, staff.email)
    start, middle, _ = await business_then_sport(client, headers)
    await set_reference(client, headers, start, middle)

    stored = await compute_due_drift()
    # The classifier has a window and drifted; the embedder has no reference and is skipped.
    assert [(result.status, result.triggered_by, result.current_rows) for result in stored] == [
        ("drift", "schedule", ROWS)
    ]
    assert "label_psi" in open_drift_alerts()
    assert await compute_due_drift() == []  # not due again within STRATA_DRIFT_INTERVAL_MINUTES
    overview = (await client.get(DRIFT_URL, headers=headers)).json()
    assert [result["triggered_by"] for result in overview["results"]] == ["schedule"]
    embedder = (await client.get(f"/api/v1/models/{EMBEDDER_NAME}/drift", headers=headers)).json()
    assert embedder["results"] == []


def test_the_worker_runs_the_drift_check_every_minute():
    from jobs.worker import worker_settings

    names = {job.name for job in worker_settings()["cron_jobs"]}
    assert "monitoring.drift" in names


async def test_the_log_keeps_a_sketch_of_each_input_and_the_text_only_when_asked(client, staff, settings, monkeypatch):
    headers = await sign_in(client, staff.email)
    await predict_window(client, headers, BUSINESS[:2])
    monkeypatch.setattr(settings, "prediction_log_inputs", True)
    await predict_window(client, headers, SPORT[:1])
    with session_scope() as db_session:
        rows = db_session.execute(
            select(PredictionLog.input_text, PredictionLog.input_length, PredictionLog.input_sketch).order_by(
                PredictionLog.id
            )
        ).all()
    assert [(text, length, len(sketch)) for text, length, sketch in rows] == [
        (None, len(BUSINESS[0]), 32),
        (None, len(BUSINESS[1]), 32),
        (SPORT[0], len(SPORT[0]), 32),
    ]
