from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from app.auth.deps import CurrentUser, IdentifiedCaller, SessionDep, StaffUser, role_at_least
from app.core.db import run_in_session
from app.core.roles import Role
from app.training import service
from app.training.schemas import ComparisonOut, TrainingRunIn, TrainingRunOut, TrainingRunPage

router = APIRouter(prefix="/api/v1/training-runs", tags=["training"])

RunId = Annotated[int, Query(ge=1, le=2**31 - 1)]


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    # Published as the route's minimum role; the service checks it again.
    dependencies=[role_at_least(Role.staff)],
)
async def start_run(body: TrainingRunIn, caller: IdentifiedCaller) -> TrainingRunOut:
    """Start a training run on a dataset version (the newest when `version` is left out): 202 with
    the queued run. A column that does not exist, a text column that is not text, a label column
    with fewer than two labels, a holdout fraction outside 0.05-0.5 or a model name that cannot be
    used is a 422 naming it; an unknown dataset or version a 404. Counts against the caller's rate limit."""
    run = await service.start_run(
        actor=caller.user,
        dataset=body.dataset,
        version=body.version,
        text_column=body.text_column,
        label_column=body.label_column,
        model_name=body.model_name,
        holdout_fraction=body.holdout_fraction,
        seed=body.seed,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )
    view = await run_in_session(service.get_run, actor=caller.user, run_id=run.id)
    return TrainingRunOut.full(view)


@router.get("")
def list_runs(
    user: CurrentUser,
    db_session: SessionDep,
    dataset: Annotated[str | None, Query(max_length=100)] = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    model_name: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[Literal["queued", "running", "succeeded", "failed", "cancelled"] | None, Query()] = None,
    created_by: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="The starter's user id")] = None,
    chosen: Annotated[Literal["tfidf-lr", "embedding-lr"] | None, Query()] = None,
    sort: Literal["created_at", "macro_f1", "accuracy", "duration"] = "created_at",
    order: Literal["desc", "asc"] = "desc",
    page: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.DEFAULT_PAGE_SIZE,
) -> TrainingRunPage:
    """One page of runs, filtered and sorted on the server, with the total count of matches.
    Runs without the sorted figure (unfinished, failed) come last in either order."""
    return TrainingRunPage.of(
        service.list_runs(
            db_session=db_session,
            actor=user,
            dataset=dataset,
            version=version,
            model_name=model_name,
            status=status,
            created_by=created_by,
            chosen=chosen,
            sort=sort,
            descending=order == "desc",
            page=page,
            page_size=page_size,
        )
    )


@router.get("/compare")
def compare_runs(a: RunId, b: RunId, user: CurrentUser, db_session: SessionDep) -> ComparisonOut:
    """Runs `a` and `b` side by side: only the parameters, metrics and per-class scores that differ."""
    return ComparisonOut.of(service.compare_runs(db_session=db_session, actor=user, a=a, b=b))


@router.get("/{run_id}")
def get_run(run_id: int, user: CurrentUser, db_session: SessionDep) -> TrainingRunOut:
    """A run's status and progress (its job's), metrics, every candidate's scores, the confusion
    matrix, and the model version it registered."""
    return TrainingRunOut.full(service.get_run(db_session=db_session, actor=user, run_id=run_id))


@router.post("/{run_id}/cancel")
def cancel_run(run_id: int, user: StaffUser, db_session: SessionDep) -> TrainingRunOut:
    """Stops a queued or running run (at its next progress step); 409 once it finished."""
    return TrainingRunOut.full(service.cancel_run(db_session=db_session, actor=user, run_id=run_id))
