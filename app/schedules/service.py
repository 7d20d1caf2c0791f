"""Schedules: staff schedule a batch rescoring or a retraining on the newest version of a
dataset, as a cron expression in UTC (app/schedules/cron.py). The worker's tick fires them
(app/schedules/firing.py); here they are created, listed, paused, resumed and deleted.

A schedule keeps the action's arguments without a version: each run reads the dataset's
newest version at the moment it starts. Its runs act as the staff member who created it."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.audit.service import record
from app.auth.tables import User
from app.core.errors import Conflict, InvalidInput, NotFound
from app.core.roles import Actor, Role, require_role
from app.core.time import utcnow
from app.schedules import cron
from app.schedules.actions import check_action
from app.schedules.tables import Schedule, ScheduleAction
from jobs.tables import Job

MAX_NAME_LENGTH = 100


@dataclass
class ScheduleView:
    """A schedule with what the list shows beside it: its last job's status and its creator."""

    schedule: Schedule
    last_job_status: str | None
    created_by_email: str | None


def _check_name(name: str) -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(f"A schedule name is 1 to {MAX_NAME_LENGTH} printable characters.")
    return name


def _check_action_name(action: str) -> ScheduleAction:
    try:
        return ScheduleAction(action)
    except ValueError:
        choices = " or ".join(repr(choice.value) for choice in ScheduleAction)
        raise InvalidInput(f"A schedule's action is {choices}; got {str(action)[:50]!r}.") from None


def _audit(db_session: Session, actor: Actor, verb: str, schedule: Schedule, **values: dict | None) -> None:
    record(
        db_session=db_session,
        actor=actor,
        action=f"schedule.{verb}",
        target=schedule.name,
        target_id=schedule.id,
        **values,
    )


def _get(db_session: Session, schedule_id: int) -> Schedule:
    schedule = db_session.get(Schedule, schedule_id)
    if schedule is None:
        raise NotFound(f"No schedule with id {schedule_id}.")
    return schedule


def _views(db_session: Session, schedules: list[Schedule]) -> list[ScheduleView]:
    job_ids = {schedule.last_job_id for schedule in schedules if schedule.last_job_id}
    statuses = (
        dict(db_session.exec(select(Job.id, Job.status).where(col(Job.id).in_(job_ids))).all()) if job_ids else {}
    )
    user_ids = {schedule.created_by for schedule in schedules if schedule.created_by}
    emails = (
        dict(db_session.exec(select(User.id, User.email).where(col(User.id).in_(user_ids))).all()) if user_ids else {}
    )
    return [
        ScheduleView(
            schedule=schedule,
            last_job_status=statuses.get(schedule.last_job_id),
            created_by_email=emails.get(schedule.created_by),
        )
        for schedule in schedules
    ]


def list_schedules(*, db_session: Session, actor: Actor) -> list[ScheduleView]:
    """Every schedule by name, with its next run time and last result."""
    require_role(actor, Role.staff)
    return _views(db_session, list(db_session.exec(select(Schedule).order_by(Schedule.name)).all()))


def get_schedule(*, db_session: Session, actor: Actor, schedule_id: int) -> ScheduleView:
    require_role(actor, Role.staff)
    return _views(db_session, [_get(db_session, schedule_id)])[0]


def create_schedule(
    *,
    db_session: Session,
    actor: Actor,
    name: str,
    action: str,
    cron_expression: str,
    params: dict[str, Any],
    now: datetime | None = None,
) -> ScheduleView:
    """A new, running schedule. The cron expression, the action's parameters (the dataset and
    its newest version's columns, the model) are checked now, each refusal naming what is wrong;
    they are checked again each time it fires, since the dataset may have changed by then."""
    require_role(actor, Role.staff)
    name = _check_name(name)
    chosen = _check_action_name(action)
    expression = cron.parse(cron_expression)
    checked = check_action(db_session=db_session, actor=actor, action=chosen, params=params)
    if db_session.exec(select(Schedule.id).where(Schedule.name == name)).first() is not None:
        raise Conflict(f"A schedule named {name!r} already exists.")
    schedule = Schedule(
        name=name,
        action=chosen.value,
        cron=expression.expression,
        params=checked,
        next_run_at=expression.next_after(now or utcnow()),
        created_by=actor.id,
    )
    db_session.add(schedule)
    try:
        db_session.flush()
    except IntegrityError:
        raise Conflict(f"A schedule named {name!r} already exists.") from None
    _audit(
        db_session,
        actor,
        "created",
        schedule,
        new={"name": schedule.name, "action": schedule.action, "cron": schedule.cron, "params": schedule.params},
    )
    return _views(db_session, [schedule])[0]


def pause_schedule(*, db_session: Session, actor: Actor, schedule_id: int) -> ScheduleView:
    """Stops it firing until it is resumed; a run it already started goes on."""
    require_role(actor, Role.staff)
    schedule = _get(db_session, schedule_id)
    if not schedule.paused:
        _audit(db_session, actor, "paused", schedule, old={"paused": False}, new={"paused": True})
    schedule.paused = True
    # A paused schedule has no next run; clearing it also makes any claim a worker is about to
    # take on the old time fail (app/schedules/firing.py).
    schedule.next_run_at = None
    db_session.add(schedule)
    db_session.flush()
    return _views(db_session, [schedule])[0]


def resume_schedule(
    *, db_session: Session, actor: Actor, schedule_id: int, now: datetime | None = None
) -> ScheduleView:
    """Fires again from its next time after now: the runs it missed while paused do not happen."""
    require_role(actor, Role.staff)
    schedule = _get(db_session, schedule_id)
    if schedule.paused:
        _audit(db_session, actor, "resumed", schedule, old={"paused": True}, new={"paused": False})
    schedule.paused = False
    schedule.next_run_at = cron.next_run(schedule.cron, now or utcnow())
    db_session.add(schedule)
    db_session.flush()
    return _views(db_session, [schedule])[0]


def delete_schedule(*, db_session: Session, actor: Actor, schedule_id: int) -> None:
    """Deletes the schedule; a run it started goes on and stays on the Jobs page."""
    require_role(actor, Role.staff)
    schedule = _get(db_session, schedule_id)
    _audit(
        db_session,
        actor,
        "deleted",
        schedule,
        old={"action": schedule.action, "cron": schedule.cron, "params": schedule.params, "paused": schedule.paused},
    )
    db_session.delete(schedule)
    db_session.flush()
