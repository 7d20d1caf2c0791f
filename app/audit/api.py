"""The audit log for admins: read and export, nothing else. No route here (or anywhere) edits
or deletes entries; tests/audit/test_append_only.py walks every route to keep it so."""

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.audit import service
from app.audit.schemas import AuditEntryOut, AuditPageOut
from app.auth.deps import AdminUser, SessionDep
from app.auth.tables import User
from app.core.db import run_in_session
from app.core.streaming import ClosingStreamingResponse

router = APIRouter(prefix="/api/v1", tags=["audit"])


def audit_filter(
    user: Annotated[str, Query(max_length=320, description="Part of an e-mail: who acted, or whom it is about")] = "",
    action: Annotated[str, Query(max_length=64, description="An action (user.role_set) or a target type (user)")] = "",
    since: Annotated[datetime | None, Query(description="From this time (ISO 8601; UTC if no offset)")] = None,
    until: Annotated[datetime | None, Query(description="Before this time (ISO 8601; UTC if no offset)")] = None,
) -> service.AuditFilter:
    return service.check_filter(user=user, action=action, since=since, until=until)


FilterDep = Annotated[service.AuditFilter, Depends(audit_filter)]


@router.get("/audit")
def list_audit_entries(
    user: AdminUser,
    db_session: SessionDep,
    chosen: FilterDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = 50,
) -> AuditPageOut:
    """Audit entries, newest first, filtered by user, action and time. Admins only."""
    entries, total = service.list_entries(
        db_session=db_session, actor=user, chosen=chosen, page=page, page_size=page_size
    )
    return AuditPageOut(
        entries=[AuditEntryOut.of(entry) for entry in entries], total=total, page=page, page_size=page_size
    )


async def _csv_chunks(actor: User, chosen: service.AuditFilter) -> AsyncIterator[str]:
    before_id, header = None, True
    while True:
        entries = await run_in_session(service.export_batch, actor=actor, chosen=chosen, before_id=before_id)
        if entries or header:
            yield service.csv_lines(entries, header=header)
        if len(entries) < service.EXPORT_BATCH_ROWS:
            return
        before_id, header = entries[-1].id, False


@router.get("/audit.csv", responses={200: {"content": {"text/csv": {}}}})
async def export_audit_entries(user: AdminUser, chosen: FilterDep) -> ClosingStreamingResponse:
    """Every entry the filters match, newest first, as CSV (streamed). A cell that a
    spreadsheet would run as a formula (it starts with =, +, -, @) starts with ' instead. Admins only."""
    return ClosingStreamingResponse(
        _csv_chunks(user, chosen),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="strata-audit-log.csv"'},
    )
