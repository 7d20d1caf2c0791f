"""Alerts over HTTP: listing (open ones for anyone signed in, all for staff), acknowledging
(staff), a model's accuracy and error-rate thresholds (staff) and an on-demand check (staff)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.alerts import checks, service
from app.alerts.schemas import AlertOut, AlertThresholdsIn, AlertThresholdsOut
from app.auth.deps import SessionDep, StaffUser, role_at_least
from app.auth.tables import User
from app.core.roles import Role

router = APIRouter(prefix="/api/v1", tags=["alerts"])
ViewerUser = Annotated[User, role_at_least(Role.viewer)]


@router.get("/alerts")
def list_alerts(
    user: ViewerUser,
    db_session: SessionDep,
    open: Annotated[bool, Query(description="Only alerts not yet acknowledged (any signed-in user)")] = False,
    model: Annotated[str | None, Query(description="One model's alerts, by name")] = None,
    limit: Annotated[int, Query(ge=1, le=service.MAX_LIST)] = 100,
) -> list[AlertOut]:
    """Alerts, newest first. `open=true` is for anyone signed in (the Home page shows open
    alerts); without it, acknowledged alerts are listed too, for staff only (403 otherwise)."""
    return service.list_alerts(db_session=db_session, actor=user, open_only=open, model_name=model, limit=limit)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge_alert(alert_id: int, user: StaffUser, db_session: SessionDep) -> AlertOut:
    """Closes an open alert as seen by the caller; the next crossing opens a new one. 409 if it
    was already acknowledged."""
    return service.acknowledge(db_session=db_session, actor=user, alert_id=alert_id)


@router.get("/models/{model_name}/alert-thresholds")
def get_alert_thresholds(model_name: str, user: StaffUser, db_session: SessionDep) -> AlertThresholdsOut:
    return checks.get_thresholds(db_session=db_session, actor=user, model_name=model_name)


@router.put("/models/{model_name}/alert-thresholds")
def set_alert_thresholds(
    model_name: str, body: AlertThresholdsIn, user: StaffUser, db_session: SessionDep
) -> AlertThresholdsOut:
    """Replaces the model's accuracy and error-rate thresholds; null switches that alert off."""
    return checks.set_thresholds(db_session=db_session, actor=user, model_name=model_name, thresholds=body)


@router.post("/models/{model_name}/alert-check")
def check_model_alerts(model_name: str, user: StaffUser, db_session: SessionDep) -> list[AlertOut]:
    """Checks the model's accuracy and error rate against its thresholds now, and returns its
    open alerts (those this check opened or updated among them)."""
    checks.check_model(db_session=db_session, actor=user, model_name=model_name)
    return service.list_alerts(db_session=db_session, actor=user, open_only=True, model_name=model_name)
