"""The audit log: who changed what, when, from which address, with the values before and after.

`record` is called by every domain's service in the transaction of the change itself, so a
change and its entry commit (or roll back) together. Reading is for admins only; nothing
here or anywhere else updates or deletes an entry except the retention sweep
(`delete_older_than`, run daily by the worker: app/audit/jobs.py)."""

import csv
import enum
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import and_, delete, func, or_
from sqlmodel import Session, col, select

from app.audit.tables import AuditEntry
from app.core.errors import InvalidInput
from app.core.request_address import current_request_address
from app.core.roles import Actor, Role, require_role

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


# ------------------------------------------------------------------ reading (admins)

MAX_PAGE_SIZE = 200
# The CSV export reads this many entries per database round trip.
EXPORT_BATCH_ROWS = 1000
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ("at", "actor", "address", "action", "target_type", "target_id", "target", "old", "new", "detail")


@dataclass(frozen=True)
class AuditFilter:
    """`user`: part of an e-mail, matched against who acted and against the user a user or
    session entry is about (so a failed sign-in on bob@ shows under bob). `action`: an exact
    action (user.role_set) or a target type (user: every user.* entry). Times are UTC,
    `since` inclusive, `until` exclusive."""

    user: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def check_filter(
    *, user: str = "", action: str = "", since: datetime | None = None, until: datetime | None = None
) -> AuditFilter:
    since, until = _as_utc(since), _as_utc(until)
    if since is not None and until is not None and since >= until:
        raise InvalidInput("'since' must be before 'until'.")
    return AuditFilter(
        user=(user or "").strip().lower()[:MAX_TEXT], action=(action or "").strip()[:64], since=since, until=until
    )


def _where(chosen: AuditFilter) -> list:
    conditions = []
    if chosen.user:
        about_a_user = col(AuditEntry.target_type).in_(("user", "session"))
        conditions.append(
            or_(
                func.lower(AuditEntry.actor).contains(chosen.user, autoescape=True),
                and_(about_a_user, func.lower(AuditEntry.target).contains(chosen.user, autoescape=True)),
            )
        )
    if chosen.action:
        if "." in chosen.action:
            conditions.append(AuditEntry.action == chosen.action)
        else:
            conditions.append(AuditEntry.target_type == chosen.action)
    if chosen.since is not None:
        conditions.append(col(AuditEntry.at) >= chosen.since)
    if chosen.until is not None:
        conditions.append(col(AuditEntry.at) < chosen.until)
    return conditions


def list_entries(
    *, db_session: Session, actor: Actor, chosen: AuditFilter, page: int = 1, page_size: int = 50
) -> tuple[list[AuditEntry], int]:
    """One page of entries, newest first, and how many match in all."""
    require_role(actor, Role.admin)
    if page < 1:
        raise InvalidInput("'page' starts at 1.")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"'page_size' is 1 to {MAX_PAGE_SIZE}.")
    conditions = _where(chosen)
    total = db_session.exec(select(func.count()).select_from(AuditEntry).where(*conditions)).one()
    entries = db_session.exec(
        select(AuditEntry)
        .where(*conditions)
        .order_by(col(AuditEntry.at).desc(), col(AuditEntry.id).desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    ).all()
    return list(entries), total


def action_choices(*, db_session: Session, actor: Actor) -> list[str]:
    """Every action the log holds, for the page's filter."""
    require_role(actor, Role.admin)
    return list(db_session.exec(select(AuditEntry.action).distinct().order_by(AuditEntry.action)))


def export_batch(
    *, db_session: Session, actor: Actor, chosen: AuditFilter, before_id: int | None, limit: int = EXPORT_BATCH_ROWS
) -> list[AuditEntry]:
    """The next entries of a CSV export, newest (highest id) first, below `before_id`. Paged by
    id rather than offset, so entries written while the export runs do not shift it."""
    require_role(actor, Role.admin)
    conditions = _where(chosen)
    if before_id is not None:
        conditions.append(col(AuditEntry.id) < before_id)
    return list(db_session.exec(select(AuditEntry).where(*conditions).order_by(col(AuditEntry.id).desc()).limit(limit)))


def _safe_cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_lines(entries: list[AuditEntry], *, header: bool) -> str:
    """CSV text of these entries (with the header row first if asked); every cell that a
    spreadsheet would run as a formula starts with a quote instead."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if header:
        writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = (
            entry.at.isoformat(),
            entry.actor,
            entry.address,
            entry.action,
            entry.target_type,
            entry.target_id,
            entry.target,
            entry.old_values,
            entry.new_values,
            entry.detail,
        )
        writer.writerow([_safe_cell(cell) for cell in row])
    return buffer.getvalue()


# ------------------------------------------------------------------ retention

RETENTION_BATCH_ROWS = 5000


def delete_batch_older_than(*, db_session: Session, cutoff: datetime, limit: int = RETENTION_BATCH_ROWS) -> int:
    """The retention job's one way to remove entries (app/audit/jobs.py): up to `limit` of those
    written before `cutoff`, oldest first, in the caller's transaction. Returns how many."""
    ids = list(
        db_session.exec(
            select(AuditEntry.id).where(col(AuditEntry.at) < cutoff).order_by(col(AuditEntry.id)).limit(limit)
        )
    )
    if ids:
        db_session.exec(delete(AuditEntry).where(col(AuditEntry.id).in_(ids)))
    return len(ids)
