"""Opening alerts (once per model, kind and statistic while open) and acknowledging them."""

import pytest
from prometheus_client import REGISTRY

from app.alerts import service
from app.core.db import session_scope
from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.predict.tables import ModelVersion, RegisteredModel


@pytest.fixture
def model_ids(db) -> tuple[int, int]:
    """A registered model and its version 1 (no artifact is read)."""
    with session_scope() as db_session:
        model = RegisteredModel(name="churn", kind="classifier")
        db_session.add(model)
        db_session.flush()
        version = ModelVersion(
            model_id=model.id,
            number=1,
            artifact="/nowhere",
            sha256="0" * 64,
            size_bytes=1,
            source="test",
            created_by="system",
        )
        db_session.add(version)
        db_session.flush()
        return model.id, version.id


def open_accuracy(model_ids, value: float):
    model_id, version_id = model_ids
    with session_scope() as db_session:
        return service.open_alert(
            db_session=db_session,
            model_id=model_id,
            version_id=version_id,
            kind="accuracy",
            statistic="accuracy",
            value=value,
            threshold=0.7,
            message=f"Live accuracy {value:.0%} is below 70%.",
        )


def open_alerts_metric(kind: str) -> float:
    return REGISTRY.get_sample_value("strata_open_alerts", {"kind": kind})


def test_a_crossing_while_open_updates_the_alert_and_one_after_acknowledgement_opens_another(model_ids, staff):
    first = open_accuracy(model_ids, 0.6)
    assert first is not None and first.id
    assert open_accuracy(model_ids, 0.5) is None
    with session_scope() as db_session:
        [alert] = service.list_alerts(db_session=db_session, actor=staff)
    assert (alert.model, alert.version, alert.value, alert.open) == ("churn", 1, 0.5, True)
    assert alert.message == "Live accuracy 50% is below 70%."
    assert alert.last_seen_at >= alert.opened_at
    assert open_alerts_metric("accuracy") == 1

    with session_scope() as db_session:
        acknowledged = service.acknowledge(db_session=db_session, actor=staff, alert_id=alert.id)
    assert (acknowledged.open, acknowledged.acknowledged_by) == (False, staff.email)
    assert acknowledged.acknowledged_at is not None
    assert open_alerts_metric("accuracy") == 0

    again = open_accuracy(model_ids, 0.55)
    assert again is not None and again.id != alert.id
    with session_scope() as db_session:
        alerts = service.list_alerts(db_session=db_session, actor=staff)
        opened = service.list_alerts(db_session=db_session, actor=staff, open_only=True)
    assert [(a.id, a.open) for a in alerts] == [(again.id, True), (alert.id, False)]
    assert [a.id for a in opened] == [again.id]
    assert open_alerts_metric("accuracy") == 1


def test_viewers_see_open_alerts_only_and_cannot_acknowledge(model_ids, viewer, staff):
    alert = open_accuracy(model_ids, 0.6)
    with session_scope() as db_session:
        assert [a.id for a in service.list_alerts(db_session=db_session, actor=viewer, open_only=True)] == [alert.id]
        with pytest.raises(Forbidden):
            service.list_alerts(db_session=db_session, actor=viewer)
        with pytest.raises(Forbidden):
            service.acknowledge(db_session=db_session, actor=viewer, alert_id=alert.id)


def test_unknown_ids_models_kinds_and_a_second_acknowledgement_are_refused(model_ids, staff):
    alert = open_accuracy(model_ids, 0.6)
    with session_scope() as db_session:
        with pytest.raises(NotFound, match="No alert with id 999"):
            service.acknowledge(db_session=db_session, actor=staff, alert_id=999)
        with pytest.raises(NotFound, match="No model named 'nope'"):
            service.list_alerts(db_session=db_session, actor=staff, model_name="nope")
        with pytest.raises(InvalidInput, match="kind"):
            service.open_alert(
                db_session=db_session,
                model_id=model_ids[0],
                version_id=None,
                kind="mood",
                statistic="x",
                value=1,
                threshold=0,
                message="",
            )
        service.acknowledge(db_session=db_session, actor=staff, alert_id=alert.id)
    with session_scope() as db_session, pytest.raises(Conflict, match="already acknowledged by staff@x.io"):
        service.acknowledge(db_session=db_session, actor=staff, alert_id=alert.id)
