"""Drift over HTTP (staff): a model's drift settings and results, its reference window and
thresholds, and a computation now (rate limited)."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.auth.deps import IdentifiedCaller, SessionDep, StaffUser, role_at_least
from app.core.roles import Role
from app.monitoring import drift
from app.monitoring.drift_schemas import (
    DriftComputeRequest,
    DriftConfigOut,
    DriftOverview,
    DriftReferenceRequest,
    DriftReport,
    DriftThresholdsRequest,
)

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


@router.get("/models/{model_name}/drift")
def drift_overview(
    model_name: str,
    user: StaffUser,
    db_session: SessionDep,
    version: Annotated[int | None, Query(description="One version's results; default every version")] = None,
    limit: Annotated[int, Query(ge=1, le=drift.MAX_HISTORY, description="Results, newest first")] = 20,
) -> DriftOverview:
    """The model's reference window and thresholds (in force, defaults, which are its own) and its
    latest drift results."""
    return drift.overview(db_session=db_session, actor=user, model_name=model_name, version_number=version, limit=limit)


# Published as the route's minimum role; the service checks it again.
@router.post("/models/{model_name}/drift", dependencies=[role_at_least(Role.staff)])
async def compute_drift(
    model_name: str, caller: IdentifiedCaller, body: DriftComputeRequest | None = None
) -> DriftReport:
    """Computes drift now for a version (default production) over the current window (default the
    last STRATA_DRIFT_WINDOW_HOURS, after the reference window), stores it and opens a drift alert
    per statistic over its threshold. 409 when the version has no training data and the model no
    reference window; `status` "not_enough_data" below STRATA_DRIFT_MIN_SAMPLES rows. Rate limited."""
    body = body or DriftComputeRequest()
    return await drift.compute_drift_now(
        actor=caller.user,
        model_name=model_name,
        version_number=body.version,
        since=body.since,
        until=body.until,
        caller=caller.identity,
        limit_per_minute=caller.limit_per_minute,
    )


@router.put("/models/{model_name}/drift-reference")
def set_drift_reference(
    model_name: str, body: DriftReferenceRequest, user: StaffUser, db_session: SessionDep
) -> DriftConfigOut:
    """Sets the reference window of a model's versions without training data (for example their
    first week in production): a past window of at most 400 days."""
    return drift.set_reference_window(
        db_session=db_session, actor=user, model_name=model_name, since=body.since, until=body.until
    )


@router.put("/models/{model_name}/drift-thresholds")
def set_drift_thresholds(
    model_name: str, body: DriftThresholdsRequest, user: StaffUser, db_session: SessionDep
) -> DriftConfigOut:
    """Sets the model's own thresholds ({statistic: value}; null: back to the default)."""
    return drift.set_thresholds(db_session=db_session, actor=user, model_name=model_name, thresholds=body.thresholds)
