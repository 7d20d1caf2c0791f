from fastapi import APIRouter, status

from app.auth.deps import SessionDep, StaffUser
from app.schedules import service
from app.schedules.schemas import ScheduleIn, ScheduleOut

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])


@router.get("")
def list_schedules(user: StaffUser, db_session: SessionDep) -> list[ScheduleOut]:
    """Every schedule with its next run time (UTC) and last result. Staff only."""
    return [ScheduleOut.of(view) for view in service.list_schedules(db_session=db_session, actor=user)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_schedule(body: ScheduleIn, user: StaffUser, db_session: SessionDep) -> ScheduleOut:
    """Schedules a batch rescoring or a retraining on the newest version of a dataset. `cron` is
    a 5-field expression in UTC; the runs act as the caller. A bad field of the expression, a
    dataset, column or model that does not exist is a 422 naming it; a name in use a 409."""
    view = service.create_schedule(
        db_session=db_session,
        actor=user,
        name=body.name,
        action=body.action,
        cron_expression=body.cron,
        params=body.params,
    )
    return ScheduleOut.of(view)


@router.get("/{schedule_id}")
def get_schedule(schedule_id: int, user: StaffUser, db_session: SessionDep) -> ScheduleOut:
    return ScheduleOut.of(service.get_schedule(db_session=db_session, actor=user, schedule_id=schedule_id))


@router.post("/{schedule_id}/pause")
def pause_schedule(schedule_id: int, user: StaffUser, db_session: SessionDep) -> ScheduleOut:
    """Stops it firing; a run it already started goes on."""
    return ScheduleOut.of(service.pause_schedule(db_session=db_session, actor=user, schedule_id=schedule_id))


@router.post("/{schedule_id}/resume")
def resume_schedule(schedule_id: int, user: StaffUser, db_session: SessionDep) -> ScheduleOut:
    """Fires again from its next time after now; runs missed while paused do not happen."""
    return ScheduleOut.of(service.resume_schedule(db_session=db_session, actor=user, schedule_id=schedule_id))


@router.delete("/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_schedule(schedule_id: int, user: StaffUser, db_session: SessionDep) -> None:
    service.delete_schedule(db_session=db_session, actor=user, schedule_id=schedule_id)
