from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app.auth.deps import CurrentUser, IdentifiedCaller, SessionDep, StaffUser, role_at_least
from app.batch import service
from app.batch.schemas import MAX_NUMBER, BatchJobIn, BatchJobOut
from app.core.db import run_in_session
from app.core.roles import Role

router = APIRouter(prefix="/api/v1/batch-jobs", tags=["batch"])

BatchId = Annotated[int, Path(ge=1, le=MAX_NUMBER)]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    # Published as the route's minimum role; the service checks it again.
    dependencies=[role_at_least(Role.staff)],
)
async def start_batch(body: BatchJobIn, caller: IdentifiedCaller) -> BatchJobOut:
    """Score every row of a dataset version (the newest when `version` is left out) with a
    classifier's production version, or version `model_version`: 202 with the queued batch job.
    An unknown dataset, version, model or model version is a 404; a column that does not exist
    or holds no text, or an embedder, a 422 naming it. Counts against the caller's rate limit."""
    run = await service.start_batch(
        actor=caller.user,
        dataset=body.dataset,
        version=body.version,
        text_column=body.text_column,
        model=body.model,
        model_version=body.model_version,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )
    return BatchJobOut.of(await run_in_session(service.get_batch, actor=caller.user, batch_id=run.id))


@router.get("")
def list_batches(
    user: CurrentUser, db_session: SessionDep, limit: Annotated[int, Query(ge=1, le=service.MAX_LISTED)] = 50
) -> list[BatchJobOut]:
    """Batch jobs, newest first."""
    return [BatchJobOut.of(view) for view in service.list_batches(db_session=db_session, actor=user, limit=limit)]


@router.get("/{batch_id}")
def get_batch(batch_id: BatchId, user: CurrentUser, db_session: SessionDep) -> BatchJobOut:
    """Status, progress (rows done and failed, rows/s, ETA) and, once done, the result dataset version."""
    return BatchJobOut.of(service.get_batch(db_session=db_session, actor=user, batch_id=batch_id))


@router.post("/{batch_id}/cancel")
def cancel_batch(batch_id: BatchId, user: StaffUser, db_session: SessionDep) -> BatchJobOut:
    """Stops the batch job within the model call it is in; 409 once it has finished."""
    return BatchJobOut.of(service.cancel_batch(db_session=db_session, actor=user, batch_id=batch_id))
