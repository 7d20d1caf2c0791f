"""The Monitoring page's drift panel, through its handlers as the browser calls them: staff set
the reference window and a threshold, compute drift now and see the crossed statistics flagged;
viewers cannot use any of it."""

import pytest

from app.core.time import utcnow
from app.monitoring.drift_state import DriftState
from models.classifier import CLASSIFIER_NAME
from tests.conftest import sign_in
from tests.monitoring.test_drift import predict_window
from tests.monitoring.test_drift_api import BUSINESS, SPORT, small_windows  # noqa: F401 - fixture
from tests.predict.test_state import STAFF_ONLY, send, signed_in

pytestmark = pytest.mark.usefixtures("builtin_models", "small_windows")

MOMENT = "%Y-%m-%dT%H:%M:%S.%f"


async def test_staff_set_a_window_and_a_threshold_and_see_crossed_statistics(client, staff):
    headers = await sign_in(client, staff.email)
    start = utcnow()
    await predict_window(client, headers, BUSINESS)
    middle = utcnow()
    await predict_window(client, headers, SPORT)

    panel = signed_in(DriftState, staff)
    await send(panel, DriftState.load)
    await send(panel, DriftState.choose_model, CLASSIFIER_NAME)
    await send(panel, DriftState.load_drift)
    assert (panel.drift_model, panel.drift_status, panel.reference_window) == (CLASSIFIER_NAME, "none yet", "not set")
    refusal = await send(panel, DriftState.compute_now)
    assert "set a reference window" in str(refusal)

    await send(panel, DriftState.save_reference_window, {"since": f"{start:{MOMENT}}", "until": f"{middle:{MOMENT}}"})
    assert panel.reference_window == f"{start:%Y-%m-%d %H:%M} to {middle:%Y-%m-%d %H:%M} UTC"
    await send(panel, DriftState.compute_now)
    assert panel.drift_status == "drift"
    label_psi = next(row for row in panel.scores if row.statistic == "label_psi")
    assert label_psi.crossed and float(label_psi.score) > 0.25 and label_psi.threshold == "0.25"
    assert [row.status for row in panel.history] == ["drift"]

    await send(panel, DriftState.save_threshold, {"statistic": "label_psi", "value": "1000"})
    assert next(row for row in panel.scores if row.statistic == "label_psi").threshold == "1000"
    bad = await send(panel, DriftState.save_threshold, {"statistic": "label_psi", "value": "high"})
    assert "A threshold is a number" in str(bad)


async def test_viewers_cannot_use_the_drift_handlers(viewer):
    panel = signed_in(DriftState, viewer)
    for handler, *args in [
        (DriftState.load_drift,),
        (DriftState.compute_now,),
        (DriftState.save_reference_window, {"since": "2026-01-01T00:00", "until": "2026-01-02T00:00"}),
        (DriftState.save_threshold, {"statistic": "label_psi", "value": "0.5"}),
    ]:
        refusal = await send(panel, handler, *args)
        assert STAFF_ONLY in str(refusal), handler
    assert panel.scores == [] and panel.history == []
