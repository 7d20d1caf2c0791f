"""The Jobs board: what a staff member may see of the job machinery (jobs/) and start,
cancel or retry by hand. Jobs a domain starts itself (an upload's ingestion) are listed
for those who may read what they work on, and are controlled only from their own page."""

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from app.audit.service import record
from app.auth.tables import User
from app.core import ratelimit
from app.core.db import run_in_session
from app.core.errors import InvalidInput
from app.core.roles import Role, has_role, require_role
from jobs import service as machinery
from jobs.registry import JobSpec, all_specs, get_spec
from jobs.tables import Job, JobStatus

MAX_LISTED = 500
# Read past the page size so that jobs the actor may not see do not leave a short page.
SCAN_FACTOR = 4


def manual_kinds() -> list[JobSpec]:
    """Kinds a person may start from the board (or the API)."""
    return [spec for spec in all_specs() if spec.manual]


def startable_kinds(*, actor: User) -> list[JobSpec]:
    require_role(actor, Role.staff)
    return [spec for spec in manual_kinds() if has_role(actor, spec.minimum_role)]


def title_of(kind: str) -> str:
    spec = get_spec(kind)
    return spec.title if spec else kind


def is_manual(kind: str) -> bool:
    spec = get_spec(kind)
    return spec is not None and spec.manual


def list_jobs(
    *,
    db_session: Session,
    actor: User,
    limit: int = 50,
    kind: str | None = None,
    statuses: Sequence[JobStatus] = (),
) -> list[Job]:
    """The latest jobs the actor may see, of one kind and in some statuses if asked."""
    require_role(actor, Role.staff)
    limit = max(1, min(limit, MAX_LISTED))
    query = select(Job).order_by(col(Job.created_at).desc()).limit(limit * SCAN_FACTOR)
    if kind:
        query = query.where(Job.kind == kind)
    if statuses:
        query = query.where(col(Job.status).in_([status.value for status in statuses]))
    jobs = list(db_session.exec(query))
    return machinery.accessible(db_session=db_session, actor=actor, jobs=jobs)[:limit]


def get_job(*, db_session: Session, actor: User, job_id: str) -> Job:
    require_role(actor, Role.staff)
    return machinery.get_accessible_job(db_session=db_session, actor=actor, job_id=job_id)


def _manual_spec(kind: str) -> JobSpec:
    spec = get_spec(kind)
    if spec is None:
        raise InvalidInput(f"Unknown job kind {kind!r}.")
    if not spec.manual:
        raise InvalidInput(f"'{spec.title}' jobs are started by Strata itself, not by hand.")
    return spec


async def start_job(
    *,
    actor: User,
    kind: str,
    params: dict[str, Any],
    max_attempts: int,
    caller: str | None = None,
    limit_per_minute: int | None = None,
) -> Job:
    """A job started by hand (page or API): one request from the caller's rate limit."""
    require_role(actor, Role.staff)
    _manual_spec(kind)
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    job = await machinery.enqueue(actor=actor, kind=kind, params=params, max_attempts=max_attempts)
    await run_in_session(_record_job_action, actor=actor, action="job.started", job=job, new={"params": params})
    return job


def _record_job_action(*, db_session: Session, actor: User, action: str, job: Job, new: dict | None = None) -> None:
    record(db_session=db_session, actor=actor, action=action, target=title_of(job.kind), target_id=job.id, new=new)


def cancel_job(*, db_session: Session, actor: User, job_id: str) -> Job:
    require_role(actor, Role.staff)
    job = machinery.request_cancel(db_session=db_session, actor=actor, job_id=job_id)
    _record_job_action(db_session=db_session, actor=actor, action="job.cancel_requested", job=job)
    return job


async def retry_job(
    *, actor: User, job_id: str, max_attempts: int, caller: str | None = None, limit_per_minute: int | None = None
) -> Job:
    require_role(actor, Role.staff)
    original = await run_in_session(get_job, actor=actor, job_id=job_id)
    _manual_spec(original.kind)
    await ratelimit.take_caller_token(actor.id, caller, limit_per_minute)
    job = await machinery.retry(actor=actor, job_id=job_id, max_attempts=max_attempts)
    await run_in_session(_record_job_action, actor=actor, action="job.retried", job=job, new={"retry_of": original.id})
    return job


def starter_emails(*, db_session: Session, jobs: list[Job]) -> dict[int, str]:
    """Who started each of these jobs, by user id."""
    ids = {job.created_by for job in jobs if job.created_by is not None}
    if not ids:
        return {}
    return dict(db_session.exec(select(User.id, User.email).where(col(User.id).in_(ids))).all())
