"""The job state machine: durable Job rows (the truth users see; arq only carries the work),
who may control a job, and the transitions the worker runtime makes."""

import uuid
from typing import Any

from arq.connections import ArqRedis
from sqlmodel import Session, select

from app.core.clients import get_job_queue
from app.core.db import run_in_session
from app.core.errors import Conflict, InvalidInput, NotFound, ServiceUnavailable
from app.core.roles import Actor, Role, has_role, require_role
from app.core.time import utcnow
from jobs.registry import get_spec
from jobs.tables import Job, JobStatus

ARQ_FUNCTION = "execute_job"
WORKER_HEARTBEAT_PREFIX = "strata:worker:"


class JobCancelled(Exception):
    """Raised inside a job when a user asked to cancel it."""


def get_job(*, db_session: Session, job_id: str) -> Job:
    job = db_session.get(Job, job_id)
    if job is None:
        raise NotFound(f"No job with id {job_id}.")
    return job


def accessible(*, db_session: Session, actor: Actor, jobs: list[Job]) -> list[Job]:
    """The jobs the actor may see and control: their kind's role, and whatever the kind's
    domain says of its parameters (an ingestion only for readers of its knowledge base)."""
    by_kind: dict[str, list[Job]] = {}
    for job in jobs:
        by_kind.setdefault(job.kind, []).append(job)
    allowed: set[str] = set()
    for kind, of_kind in by_kind.items():
        spec = get_spec(kind)
        if spec is None:
            if has_role(actor, Role.admin):
                allowed.update(job.id for job in of_kind)
            continue
        if not has_role(actor, spec.minimum_role):
            continue
        verdicts = (
            spec.may_access(db_session, actor, [job.params for job in of_kind])
            if spec.may_access
            else [True] * len(of_kind)
        )
        allowed.update(job.id for job, ok in zip(of_kind, verdicts, strict=True) if ok)
    return [job for job in jobs if job.id in allowed]


def get_accessible_job(*, db_session: Session, actor: Actor, job_id: str) -> Job:
    """A job the actor may see; one they may not is answered as unknown, so that its
    existence says nothing about records they may not read."""
    job = db_session.get(Job, job_id)
    if job is None or not accessible(db_session=db_session, actor=actor, jobs=[job]):
        raise NotFound(f"No job with id {job_id}.")
    return job


def create_job(*, db_session: Session, actor: Actor, kind: str, params: dict[str, Any], max_attempts: int) -> Job:
    spec = get_spec(kind)
    if spec is None:
        raise InvalidInput(f"Unknown job kind {kind!r}.")
    require_role(actor, spec.minimum_role)
    job = Job(
        id=uuid.uuid4().hex,
        kind=kind,
        params=params,
        created_by=actor.id,
        max_attempts=max_attempts,
        message="Waiting for a worker",
    )
    db_session.add(job)
    db_session.flush()
    return job


async def submit(queue: ArqRedis, job: Job) -> None:
    """Hands a committed Job row to arq; the arq job id is the Job id."""
    await queue.enqueue_job(ARQ_FUNCTION, job.id, _job_id=job.id)


def request_cancel(*, db_session: Session, actor: Actor, job_id: str) -> Job:
    job = get_accessible_job(db_session=db_session, actor=actor, job_id=job_id)
    if JobStatus(job.status).finished:
        raise Conflict(f"The job already {job.status}.")
    if job.status == JobStatus.queued:
        _finish(job, JobStatus.cancelled, message="Cancelled before it started")
    else:
        job.cancel_requested = True
        job.message = "Cancelling…"
    db_session.add(job)
    return job


def retryable_job(*, db_session: Session, actor: Actor, job_id: str) -> Job:
    """The failed or cancelled job whose kind and parameters a retry runs again."""
    job = get_accessible_job(db_session=db_session, actor=actor, job_id=job_id)
    if job.status not in (JobStatus.failed, JobStatus.cancelled):
        raise Conflict("Only failed or cancelled jobs can be retried.")
    return job


def _finish(job: Job, status: JobStatus, *, message: str, error: str | None = None) -> None:
    job.status = status.value
    job.message = message
    job.error = error
    job.finished_at = utcnow()


# Called by the worker runtime.


def start_attempt(*, db_session: Session, job_id: str, worker_id: str, attempt: int) -> Job | None:
    """Marks the job running on this worker. None when it must not run (finished or unknown)."""
    job = db_session.get(Job, job_id)
    if job is None or JobStatus(job.status).finished:
        return None
    if job.cancel_requested:
        _finish(job, JobStatus.cancelled, message="Cancelled")
        db_session.add(job)
        return None
    job.status = JobStatus.running.value
    job.progress = 0.0  # each attempt starts over
    job.attempts = attempt
    job.worker_id = worker_id
    job.started_at = job.started_at or utcnow()
    job.message = "Started" if attempt == 1 else f"Started again (attempt {attempt} of {job.max_attempts})"
    db_session.add(job)
    return job


def record_progress(*, db_session: Session, job_id: str, fraction: float, message: str) -> None:
    """Stores progress; raises JobCancelled if a user asked to cancel meanwhile."""
    job = db_session.get(Job, job_id)
    if job is None:
        raise JobCancelled("the job record is gone")
    if job.cancel_requested:
        raise JobCancelled("cancelled by a user")
    job.progress = min(1.0, max(job.progress, fraction))
    if message:
        job.message = message[:500]
    db_session.add(job)


def finish_attempt(
    *,
    db_session: Session,
    job_id: str,
    status: JobStatus,
    message: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> None:
    job = db_session.get(Job, job_id)
    if job is None:
        return
    if status == JobStatus.queued:
        job.status = status.value
        job.message = message
        job.error = error
    else:
        _finish(job, status, message=message, error=error)
        job.result = result
        if status == JobStatus.succeeded:
            job.progress = 1.0
    job.worker_id = None
    db_session.add(job)


def orphaned_jobs(*, db_session: Session, live_worker_ids: set[str]) -> list[Job]:
    """Jobs marked running on a worker that no longer sends heartbeats."""
    running = db_session.exec(select(Job).where(Job.status == JobStatus.running.value))
    return [job for job in running if job.worker_id not in live_worker_ids]


def requeue_or_fail_orphan(*, db_session: Session, job: Job) -> bool:
    """Returns True if the job will run again, False if it was marked failed."""
    dead_worker = job.worker_id
    if job.attempts < job.max_attempts:
        job.status = JobStatus.queued.value
        job.message = f"Worker {dead_worker} died; retrying (attempt {job.attempts + 1} of {job.max_attempts})"
        job.worker_id = None
        db_session.add(job)
        return True
    _finish(
        job,
        JobStatus.failed,
        message="Failed: its worker died",
        error=f"The worker running this job ({dead_worker}) died on each of {job.attempts} attempts.",
    )
    job.worker_id = None
    db_session.add(job)
    return False


async def enqueue(*, actor: Actor, kind: str, params: dict[str, Any], max_attempts: int) -> Job:
    """Creates the Job row and queues it (see queue_or_fail)."""
    job = await run_in_session(create_job, actor=actor, kind=kind, params=params, max_attempts=max_attempts)
    await queue_or_fail(job, what="job")
    return job


async def queue_or_fail(job: Job, *, what: str) -> None:
    """Queues a job whose row is written. If the queue is unreachable the job is marked failed
    with the reason, and ServiceUnavailable tells the caller that the `what` did not start."""
    try:
        async with get_job_queue() as queue:
            await submit(queue, job)
    except Exception as exc:
        await run_in_session(
            finish_attempt,
            job_id=job.id,
            status=JobStatus.failed,
            message="Could not reach the job queue",
            error=f"The job queue (Redis) was unreachable when it was started ({type(exc).__name__}: {exc});"
            " it never ran. Start it again.",
        )
        raise ServiceUnavailable(
            f"The job queue (Redis) is unreachable; the {what} was not started. Try again."
        ) from exc


async def retry(*, actor: Actor, job_id: str, max_attempts: int) -> Job:
    """Runs a failed or cancelled job again, as a new job with the same kind and parameters."""
    original = await run_in_session(retryable_job, actor=actor, job_id=job_id)
    return await enqueue(actor=actor, kind=original.kind, params=original.params, max_attempts=max_attempts)
