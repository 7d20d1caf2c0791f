"""The Predict page's feedback and the Monitoring page, through their handlers as the browser
calls them: feedback moves the accuracy the page shows; viewers cannot open the page."""

import pytest

from app.monitoring.state import MonitoringState
from app.predict.state import PredictState
from models.classifier import CLASSIFIER_NAME
from tests.monitoring.test_figures import BUSINESS, SPORT
from tests.predict.test_state import STAFF_ONLY, send, signed_in

pytestmark = pytest.mark.usefixtures("builtin_models")


async def test_feedback_from_the_predict_page_moves_the_accuracy_staff_see(staff, viewer, settings, monkeypatch):
    # Sampling off: the Predict page logs its predictions anyway, so that they can take feedback.
    monkeypatch.setattr(settings, "prediction_log_sample_rate", 0.0)
    page = signed_in(PredictState, viewer)
    await send(page, PredictState.load)
    await send(page, PredictState.choose_model, CLASSIFIER_NAME)
    await send(page, PredictState.predict, {"inputs": f"{BUSINESS}\n{SPORT}"})
    assert [row.label for row in page.results] == ["business", "sport"]
    first, second = page.results
    assert first.prediction_id and "tech" in first.label_choices
    # At once: the log has not written these rows yet, and feedback still finds them.

    await send(page, PredictState.give_feedback, {"prediction_id": first.prediction_id, "label": "business"})
    await send(page, PredictState.give_feedback, {"prediction_id": second.prediction_id, "label": "tech"})
    assert page.results[0].feedback == "Saved: business (the model was right)"
    assert page.results[1].feedback == "Saved: tech"
    refusal = await send(page, PredictState.give_feedback, {"prediction_id": "gone", "label": "tech"})
    assert "no longer on the page" in str(refusal)

    monitoring = signed_in(MonitoringState, staff)
    await send(monitoring, MonitoringState.load)
    assert monitoring.model_name in monitoring.models and CLASSIFIER_NAME in monitoring.models
    await send(monitoring, MonitoringState.choose_model, CLASSIFIER_NAME)
    await send(monitoring, MonitoringState.choose_period, "hour")
    assert monitoring.versions == ["all", "1"]
    assert (monitoring.predictions, monitoring.feedback, monitoring.accuracy) == (2, 2, "50.0%")
    assert {series.label for series in monitoring.labels} == {"business", "sport"}
    assert sum(row["predictions"] for row in monitoring.series) == 2
    assert sum(row["business"] for row in monitoring.series) == 1
    assert sum(row["count"] for row in monitoring.confidence) == 2

    await send(monitoring, MonitoringState.choose_version, "1")
    assert monitoring.predictions == 2
    refusal = await send(monitoring, MonitoringState.choose_period, "year")
    assert "Unknown period 'year'" in str(refusal)


async def test_viewers_cannot_use_the_monitoring_handlers(viewer):
    page = signed_in(MonitoringState, viewer)
    for handler, *args in [
        (MonitoringState.load,),
        (MonitoringState.choose_model, CLASSIFIER_NAME),
        (MonitoringState.choose_period, "week"),
        (MonitoringState.refresh,),
    ]:
        refusal = await send(page, handler, *args)
        assert STAFF_ONLY in str(refusal), handler
    assert page.predictions == 0 and page.series == []
