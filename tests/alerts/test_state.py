"""The Monitoring page's alerts panel through its handlers, as the browser calls them."""

from app.monitoring.alerts_state import AlertsState
from tests.alerts.test_open_and_acknowledge import model_ids, open_accuracy  # noqa: F401 - shared fixture
from tests.predict.test_state import STAFF_ONLY, send, signed_in


async def test_staff_see_open_alerts_and_acknowledge_one_from_the_panel(staff, model_ids):  # noqa: F811
    alert = open_accuracy(model_ids, 0.42)
    panel = signed_in(AlertsState, staff)
    await send(panel, AlertsState.load)
    [row] = panel.open_alerts
    assert (row.id, row.model, row.version, row.kind, row.value) == (alert.id, "churn", "v1", "Accuracy", "0.42")
    assert row.message == "Live accuracy 42% is below 70%."

    done = await send(panel, AlertsState.acknowledge, alert.id)
    assert "Acknowledged the accuracy alert on churn" in str(done)
    assert panel.open_alerts == []
    again = await send(panel, AlertsState.acknowledge, alert.id)
    assert "already acknowledged" in str(again)


async def test_viewers_cannot_use_the_alerts_panel(viewer, model_ids):  # noqa: F811
    alert = open_accuracy(model_ids, 0.42)
    panel = signed_in(AlertsState, viewer)
    for handler, *args in [(AlertsState.load,), (AlertsState.acknowledge, alert.id)]:
        assert STAFF_ONLY in str(await send(panel, handler, *args)), handler
    assert panel.open_alerts == []
