from fastapi import APIRouter, status

from app.core.deps import SessionDep, SettingsDep, StaffUser
from app.jobs_board import service
from app.jobs_board.schemas import JobIn, JobKindOut, JobOut
from jobs.registry import all_specs

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.get("/kinds")
def list_kinds(_: StaffUser) -> list[JobKindOut]:
    return [JobKindOut(kind=spec.kind, title=spec.title, minimum_role=spec.minimum_role) for spec in all_specs()]


@router.get("")
def list_jobs(_: StaffUser, db_session: SessionDep, limit: int = 50, kind: str | None = None) -> list[JobOut]:
    return [JobOut.of(job) for job in service.list_jobs(db_session=db_session, limit=min(limit, 500), kind=kind)]


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def start_job(body: JobIn, user: StaffUser, settings: SettingsDep) -> JobOut:
    job = await service.enqueue(kind=body.kind, params=body.params, user=user, max_attempts=settings.job_max_tries)
    return JobOut.of(job)


@router.get("/{job_id}")
def get_job(job_id: str, _: StaffUser, db_session: SessionDep) -> JobOut:
    return JobOut.of(service.get_job(db_session=db_session, job_id=job_id))


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, user: StaffUser, db_session: SessionDep) -> JobOut:
    return JobOut.of(service.request_cancel(db_session=db_session, job_id=job_id, user=user))


@router.post("/{job_id}/retry", status_code=status.HTTP_202_ACCEPTED)
async def retry_job(job_id: str, user: StaffUser, settings: SettingsDep) -> JobOut:
    return JobOut.of(await service.retry(job_id=job_id, user=user, max_attempts=settings.job_max_tries))
