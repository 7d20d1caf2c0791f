"""Monitoring over HTTP: a model's figures (staff) and feedback on a logged prediction
(any signed-in user)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.deps import SessionDep, StaffUser, role_at_least
from app.auth.tables import User
from app.core.roles import Role
from app.monitoring import service
from app.monitoring.schemas import FeedbackRequest, FeedbackResult, MonitoringFigures, Period

router = APIRouter(prefix="/api/v1", tags=["monitoring"])
# Feedback is for whoever used the model: every signed-in user may predict with every model.
ViewerUser = Annotated[User, role_at_least(Role.viewer)]


@router.get("/models/{model_name}/monitoring")
def model_monitoring(
    model_name: str,
    user: StaffUser,
    db_session: SessionDep,
    since: Annotated[datetime | None, Query(description="Start (ISO 8601; default: `period` before until)")] = None,
    until: Annotated[datetime | None, Query(description="End (ISO 8601; default now)")] = None,
    period: Annotated[Period | None, Query(description="hour, day or week ending at until, instead of since")] = None,
    version: Annotated[int | None, Query(description="One version's figures; default every version")] = None,
) -> MonitoringFigures:
    return service.figures(
        db_session=db_session,
        actor=user,
        model_name=model_name,
        version_number=version,
        period=period,
        since=since,
        until=until,
    )


@router.post("/predictions/{prediction_id}/feedback")
async def prediction_feedback(prediction_id: str, body: FeedbackRequest, user: ViewerUser) -> FeedbackResult:
    return await service.give_feedback(actor=user, prediction_id=prediction_id, label=body.label)
