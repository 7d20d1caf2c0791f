"""Firing schedules: the worker's tick (app/schedules/jobs.py, an arq cron job every minute)
finds the due ones and fires each.

- Once only. A worker claims a schedule by moving its next_run_at from the time it read to the
  next one in a single compare-and-set UPDATE; a second worker, or a second tick of the same
  worker, that read the same time matches no row and leaves it. arq's `unique` cron jobs keep
  two workers from running the same tick too, but the claim is what guarantees it.
- No overlap. If the schedule's last job is still queued or running, nothing is started: the
  schedule says "skipped: ..." and waits for its next time.
- Missed runs. The next time after a claim is computed from now, not from the time missed, so a
  schedule whose time passed while no worker ran (or several times passed) fires once, at the
  first tick after, and then keeps to its times. A worker fires a tick when it starts, so that
  catch-up happens as soon as one is back.
- As its creator. A run starts as the staff member who created the schedule; if they were
  deactivated, deleted or are no longer staff, the schedule records that it failed and why.

Every time is UTC."""

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from app.auth.tables import User
from app.core.db import run_in_session
from app.core.errors import StrataError
from app.core.roles import Role, has_role
from app.core.time import utcnow
from app.schedules import cron
from app.schedules.actions import start_action
from app.schedules.tables import Schedule, ScheduleAction
from jobs.tables import Job, JobStatus

log = structlog.get_logger("strata.schedules")

MAX_OUTCOME_LENGTH = 1000
# Core statements on the table: the claim's row count is the whole answer, and no loaded object
# should be rewritten behind the session's back.
SCHEDULE = Schedule.__table__


@dataclass
class Claim:
    """A schedule this worker fired, with what to start (None when it is not to start)."""

    schedule_id: int
    action: ScheduleAction
    params: dict
    actor: User | None
    # Why nothing is started, recorded as the schedule's last outcome.
    refusal: str | None


def due(*, db_session: Session, now: datetime) -> list[tuple[int, datetime]]:
    """The unpaused schedules whose time has come, each with the next_run_at read (the value a
    claim must still find)."""
    rows = db_session.exec(
        select(Schedule.id, Schedule.next_run_at)
        .where(col(Schedule.paused).is_(False), col(Schedule.next_run_at) <= now)
        .order_by(Schedule.next_run_at, Schedule.id)
    ).all()
    return [(schedule_id, next_run_at) for schedule_id, next_run_at in rows]


def _record(db_session: Session, schedule_id: int, **values) -> None:
    if "last_outcome" in values:
        values["last_outcome"] = values["last_outcome"][:MAX_OUTCOME_LENGTH]
    db_session.execute(update(SCHEDULE).where(SCHEDULE.c.id == schedule_id).values(**values))


def _refusal(db_session: Session, schedule: Schedule) -> tuple[User | None, str | None]:
    """The creator to act as, or why nothing is to start."""
    if schedule.last_job_id:
        job = db_session.get(Job, schedule.last_job_id)
        if job is not None and not JobStatus(job.status).finished:
            return None, f"skipped: the previous run (job {job.id}) is still {job.status}"
    user = db_session.get(User, schedule.created_by) if schedule.created_by is not None else None
    if user is None:
        return None, "failed: the user who created this schedule no longer exists; create it again"
    if not user.is_active:
        return None, f"failed: its creator {user.email} is deactivated; create it again as an active staff member"
    if not has_role(user, Role.staff):
        return None, f"failed: its creator {user.email} is no longer staff; create it again as a staff member"
    return user, None


def claim(*, db_session: Session, schedule_id: int, seen: datetime, now: datetime) -> Claim | None:
    """Fires the schedule if its next_run_at is still `seen`: moves it to the next time after
    `now` and decides whether to start a run. None when another tick claimed it first (or it
    was paused, resumed or deleted meanwhile)."""
    schedule = db_session.get(Schedule, schedule_id)
    if schedule is None:
        return None
    following = cron.next_run(schedule.cron, now)
    claimed = db_session.execute(
        update(SCHEDULE)
        .where(SCHEDULE.c.id == schedule_id, SCHEDULE.c.next_run_at == seen, SCHEDULE.c.paused.is_(False))
        .values(next_run_at=following, last_fired_at=now)
    )
    if claimed.rowcount != 1:
        return None
    actor, refusal = _refusal(db_session, schedule)
    if refusal is not None:
        _record(db_session, schedule_id, last_outcome=refusal)
    return Claim(
        schedule_id=schedule_id,
        action=ScheduleAction(schedule.action),
        params=dict(schedule.params),
        actor=actor,
        refusal=refusal,
    )


def _finish(*, db_session: Session, schedule_id: int, job_id: str | None, outcome: str) -> None:
    _record(db_session, schedule_id, last_job_id=job_id, last_outcome=outcome)


async def fire(claimed: Claim) -> str:
    """Starts the claimed schedule's run, records the outcome and returns it."""
    if claimed.refusal is not None:
        return claimed.refusal
    job_id = None
    try:
        job_id = await start_action(actor=claimed.actor, action=claimed.action, params=claimed.params)
    except StrataError as exc:
        outcome = f"failed: {exc.message}"
    except Exception as exc:
        log.exception("schedule.start_failed", schedule_id=claimed.schedule_id)
        outcome = f"failed: {type(exc).__name__}: {exc}"
    else:
        outcome = f"started job {job_id}"
    await run_in_session(_finish, schedule_id=claimed.schedule_id, job_id=job_id, outcome=outcome)
    log.info("schedule.fired", schedule_id=claimed.schedule_id, outcome=outcome)
    return outcome


async def fire_due_schedules(now: datetime | None = None) -> dict[int, str]:
    """One tick: fires every due schedule this worker claims; the outcome of each, by id."""
    now = now or utcnow()
    outcomes = {}
    for schedule_id, seen in await run_in_session(due, now=now):
        claimed = await run_in_session(claim, schedule_id=schedule_id, seen=seen, now=now)
        if claimed is not None:
            outcomes[schedule_id] = await fire(claimed)
    return outcomes
