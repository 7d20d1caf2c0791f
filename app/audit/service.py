"""The audit log: who changed what, when, from which address, with the values before and after.

`record` is called by every domain's service in the transaction of the change itself, so a
change and its entry commit (or roll back) together. Reading is for admins only; nothing
here or anywhere else updates or deletes an entry except the retention sweep
(`delete_older_than`, run daily by the worker: app/audit/jobs.py)."""

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlmodel import Session

from app.audit.tables import AuditEntry
from app.core.request_address import current_request_address
from app.core.roles import Actor

audit_log = structlog.get_logger("strata.audit")

# Keys whose values never enter the log, whatever a caller passes (password and key hashes,
# webhook secrets, tokens): dropped from old and new.
SECRET_KEY_WORDS = ("password", "secret", "hash", "token")
MAX_TEXT = 320


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_safe(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _without_secrets(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    kept = {key: value for key, value in values.items() if not any(w in key.lower() for w in SECRET_KEY_WORDS)}
    return _json_safe(kept)


def actor_text(actor: Actor | None) -> str:
    """What the entry keeps of its actor after the user is gone: the e-mail, or 'system' for
    Strata acting on its own (first start, the `strata` command), or '' for nobody (a
    failed sign-in)."""
    if actor is None:
        return ""
    email = getattr(actor, "email", None)
    if email:
        return str(email)[:MAX_TEXT]
    return "system" if actor.id is None else f"user {actor.id}"


def record(
    *,
    db_session: Session,
    actor: Actor | None,
    action: str,
    target: str,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    address: str | None = None,
    target_id: int | str | None = None,
    detail: str | None = None,
) -> AuditEntry:
    """Adds one entry to the caller's transaction: it commits with the change, or not at all.

    `action` is "<target type>.<verb>" (user.role_set, webhook.deleted); the target type is
    its first part. `target` is what a reader recognises the target by (an e-mail, a name),
    `target_id` its id. `old`/`new` are the changed values before and after (keys naming a
    password, secret, hash or token are dropped). `address` defaults to the acting request's
    client address (app/core/request_address.py): "worker" for the worker's jobs, empty
    outside any request."""
    target_type, _, verb = action.partition(".")
    if not target_type or not verb:
        raise ValueError(f"An audit action is '<target type>.<verb>'; got {action!r}.")
    entry = AuditEntry(
        actor_id=getattr(actor, "id", None),
        actor=actor_text(actor),
        address=(address if address is not None else current_request_address() or None),
        action=action[:64],
        target_type=target_type[:32],
        target_id=None if target_id is None else str(target_id)[:64],
        target=(target or "")[:MAX_TEXT],
        old_values=_without_secrets(old),
        new_values=_without_secrets(new),
        detail=detail,
    )
    if entry.address:
        entry.address = entry.address[:64]
    db_session.add(entry)
    audit_log.info(
        action,
        actor=entry.actor,
        target_type=entry.target_type,
        target_id=entry.target_id,
        target=entry.target,
        address=entry.address,
        old=entry.old_values,
        new=entry.new_values,
    )
    return entry
