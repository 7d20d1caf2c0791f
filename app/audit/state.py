"""The Audit log page (admins): filters, server-side pages, and the CSV export link with the
same filters. Read only: no handler here changes an entry."""

import json
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import reflex as rx

from app.audit import service
from app.audit.tables import AuditEntry
from app.auth.state import AuthState, acting_user, guarded
from app.core.db import run_in_session
from app.core.errors import InvalidInput
from app.core.roles import Role

PAGE_SIZE = 50
FILTER_FIELDS = ("filter_user", "filter_action", "filter_since", "filter_until")
ANY_ACTION = "any action"
EXPORT_PATH = "/api/v1/audit.csv"


def _readable(values: dict | None) -> str:
    if not values:
        return ""
    return ", ".join(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in values.items())


def _change(entry: AuditEntry) -> str:
    """Old → new, one field at a time, as a person reads it."""
    old, new = entry.old_values or {}, entry.new_values or {}
    if old and new:
        return "; ".join(
            f"{key}: {json.dumps(old.get(key), ensure_ascii=False)} → {json.dumps(new.get(key), ensure_ascii=False)}"
            for key in dict.fromkeys([*old, *new])
        )
    return _readable(new) or (f"was {_readable(old)}" if old else "")


@dataclass
class AuditRow:
    id: int
    at: str
    actor: str
    address: str
    action: str
    target: str
    change: str
    detail: str


def _row(entry: AuditEntry) -> AuditRow:
    return AuditRow(
        id=entry.id,
        at=f"{entry.at:%Y-%m-%d %H:%M:%S} UTC",
        actor=entry.actor or "(nobody)",
        address=entry.address or "",
        action=entry.action,
        target=entry.target,
        change=_change(entry),
        detail=entry.detail or "",
    )


def _moment(text: str, field: str) -> datetime | None:
    """A datetime-local input's value (UTC), or None when empty."""
    if not text.strip():
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"'{field}' is a date and time like 2026-01-31T14:00; got {text[:40]!r}.") from None


def _page(*, db_session, actor, chosen: service.AuditFilter, page: int) -> tuple[list[AuditRow], int, list[str]]:
    entries, total = service.list_entries(
        db_session=db_session, actor=actor, chosen=chosen, page=page, page_size=PAGE_SIZE
    )
    return [_row(entry) for entry in entries], total, service.action_choices(db_session=db_session, actor=actor)


class AuditState(AuthState):
    entries: list[AuditRow] = []
    total: int = 0
    page: int = 1
    actions: list[str] = []
    filter_user: str = ""
    filter_action: str = ANY_ACTION
    filter_since: str = ""
    filter_until: str = ""
    # The filters of the entries shown, which the export link downloads (not the unapplied edits).
    export_url: str = EXPORT_PATH

    @rx.var
    def page_count(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @rx.var
    def action_options(self) -> list[str]:
        return [ANY_ACTION, *self.actions]

    def _filter(self) -> tuple[service.AuditFilter, dict[str, str]]:
        action = "" if self.filter_action == ANY_ACTION else self.filter_action
        query = {
            "user": self.filter_user.strip(),
            "action": action,
            "since": self.filter_since.strip(),
            "until": self.filter_until.strip(),
        }
        chosen = service.check_filter(
            user=query["user"],
            action=action,
            since=_moment(self.filter_since, "From"),
            until=_moment(self.filter_until, "Until"),
        )
        return chosen, {key: value for key, value in query.items() if value}

    async def _show(self, page: int) -> None:
        chosen, query = self._filter()
        rows, total, actions = await run_in_session(_page, actor=acting_user(), chosen=chosen, page=page)
        self.entries, self.total, self.actions, self.page = rows, total, actions, page
        self.export_url = f"{EXPORT_PATH}?{urlencode(query)}" if query else EXPORT_PATH

    @rx.event
    @guarded(Role.admin)
    async def load(self):
        await self._show(1)

    @rx.event
    @guarded(Role.admin)
    async def edit_filter(self, field: str, value: str):
        if field in FILTER_FIELDS:
            setattr(self, field, str(value)[:320])

    @rx.event
    @guarded(Role.admin)
    async def search(self):
        await self._show(1)

    @rx.event
    @guarded(Role.admin)
    async def clear_filters(self):
        self.filter_user, self.filter_action, self.filter_since, self.filter_until = "", ANY_ACTION, "", ""
        await self._show(1)

    @rx.event
    @guarded(Role.admin)
    async def go_to_page(self, page: int):
        await self._show(min(max(1, int(page)), self.page_count))
