from fastapi import APIRouter, status

from app.auth.deps import IdentifiedCaller, SessionDep, SettingsDep, StaffUser
from app.jobs_board import service
from app.jobs_board.schemas import JobIn, JobKindOut, JobOut

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.get("/kinds")
def list_kinds(user: StaffUser) -> list[JobKindOut]:
    """The kinds you may start by hand."""
    return [
        JobKindOut(kind=spec.kind, title=spec.title, minimum_role=spec.minimum_role)
        for spec in service.startable_kinds(actor=user)
    ]


@router.get("")
def list_jobs(user: StaffUser, db_session: SessionDep, limit: int = 50, kind: str | None = None) -> list[JobOut]:
    """Newest first; only jobs on records you may read."""
    return [JobOut.of(job) for job in service.list_jobs(db_session=db_session, actor=user, limit=limit, kind=kind)]


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def start_job(body: JobIn, user: StaffUser, caller: IdentifiedCaller, settings: SettingsDep) -> JobOut:
    job = await service.start_job(
        actor=user,
        kind=body.kind,
        params=body.params,
        max_attempts=settings.job_max_tries,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )
    return JobOut.of(job)


@router.get("/{job_id}")
def get_job(job_id: str, user: StaffUser, db_session: SessionDep) -> JobOut:
    return JobOut.of(service.get_job(db_session=db_session, actor=user, job_id=job_id))


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, user: StaffUser, db_session: SessionDep) -> JobOut:
    return JobOut.of(service.cancel_job(db_session=db_session, actor=user, job_id=job_id))


@router.post("/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry_job(job_id: str, user: StaffUser, caller: IdentifiedCaller, settings: SettingsDep) -> JobOut:
    job = await service.retry_job(
        actor=user,
        job_id=job_id,
        max_attempts=settings.job_max_tries,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )
    return JobOut.of(job)
