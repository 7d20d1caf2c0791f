"""Usage over HTTP (admins): the report as JSON and its time series as CSV, with the same filters."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from app.auth.deps import AdminUser, SessionDep
from app.core.errors import InvalidInput
from app.core.time_buckets import Period
from app.usage import service
from app.usage.schemas import GroupBy, UsageReport
from app.usage.service import UsageFilter

router = APIRouter(prefix="/api/v1", tags=["usage"])

NO_KEY = "none"


def _filter(user: int | None, key: str | None, model: str | None) -> UsageFilter:
    if key is None or key == NO_KEY:
        return UsageFilter(user_id=user, without_key=key == NO_KEY, model=model)
    if not key.isdigit():
        raise InvalidInput(f"key must be an API key's id or {NO_KEY!r} (requests without a key); got {key!r}.")
    return UsageFilter(user_id=user, api_key_id=int(key), model=model)


def _report(
    user: AdminUser,
    db_session: SessionDep,
    group_by: Annotated[GroupBy, Query(description="user, key or model")] = "user",
    since: Annotated[datetime | None, Query(description="Start (ISO 8601; default: `period` before until)")] = None,
    until: Annotated[datetime | None, Query(description="End (ISO 8601; default now)")] = None,
    period: Annotated[Period | None, Query(description="hour, day or week ending at until, instead of since")] = None,
    user_id: Annotated[int | None, Query(alias="user", description="Only this user's requests (id)")] = None,
    key: Annotated[str | None, Query(description=f"Only this API key's requests (id), or '{NO_KEY}'")] = None,
    model: Annotated[str | None, Query(max_length=100, description="Only this model's requests")] = None,
) -> UsageReport:
    return service.usage_report(
        db_session=db_session,
        actor=user,
        group_by=group_by,
        period=period,
        since=since,
        until=until,
        narrowed=_filter(user_id, key, model),
    )


@router.get("/usage")
def usage(report: Annotated[UsageReport, Depends(_report)]) -> UsageReport:
    """Requests, errors, mean latency and tokens (prompt, completion) per user, API key or model,
    in total and per time bucket (minutes up to 2 hours, hours up to 8 days, days beyond), from
    the pages and the API alike. Admins only."""
    return report


@router.get("/usage.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def usage_csv(report: Annotated[UsageReport, Depends(_report)]) -> Response:
    """The same report's time series as CSV (one row per time bucket and group), an attachment."""
    return Response(
        service.report_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="usage-by-{report.group_by}.csv"'},
    )
