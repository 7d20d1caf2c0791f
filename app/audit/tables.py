from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from app.core.time import utcnow


class AuditEntry(SQLModel, table=True):
    """One change a user made (or a sign-in), written in the same transaction as the change.
    Append-only: nothing but the retention job (app/audit/jobs.py) deletes rows, nothing
    updates them. `actor` keeps the acting user's e-mail after the user is deleted (then
    actor_id becomes NULL); it is empty for system work with no user. `old_values` and `new_values` hold
    the values before and after, never secrets."""

    __tablename__ = "audit_entry"
    # The page lists newest first, filtered by action or by user, over a time range.
    __table_args__ = (
        Index("ix_audit_entry_action_at", "action", "at"),
        Index("ix_audit_entry_actor_id_at", "actor_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor_id: int | None = Field(default=None, foreign_key="user.id", ondelete="SET NULL")
    actor: str = Field(default="", max_length=320)
    address: str | None = Field(default=None, max_length=64)
    # "<target type>.<verb>", e.g. user.role_set, api_key.revoked, sign_in.failed.
    action: str = Field(max_length=64)
    target_type: str = Field(max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    target: str = Field(default="", max_length=320)
    old_values: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    new_values: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
