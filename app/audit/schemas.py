from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.audit.tables import AuditEntry


class AuditEntryOut(BaseModel):
    id: int
    # UTC.
    at: datetime
    # The acting user's e-mail, kept after the user is deleted (then actor_id is null);
    # "system" for Strata itself, empty for nobody (a failed sign-in).
    actor: str
    actor_id: int | None
    # The client address of the request that made the change; "worker" for the worker's jobs.
    address: str | None
    # "<target type>.<verb>", e.g. user.role_set.
    action: str
    target_type: str
    target_id: str | None
    target: str
    # The changed values before and after; never secrets.
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    detail: str | None

    @classmethod
    def of(cls, entry: AuditEntry) -> "AuditEntryOut":
        return cls(
            id=entry.id,
            at=entry.at,
            actor=entry.actor,
            actor_id=entry.actor_id,
            address=entry.address,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            target=entry.target,
            old=entry.old_values,
            new=entry.new_values,
            detail=entry.detail,
        )


class AuditPageOut(BaseModel):
    entries: list[AuditEntryOut]
    # How many entries match the filters in all.
    total: int
    page: int
    page_size: int
