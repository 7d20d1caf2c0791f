"""The Audit log page's handlers, called as the browser would call them: an admin filters,
pages and gets an export link with the shown filters; staff and viewers are refused the page
and every handler. A change made on another admin page records the websocket's address."""

import pytest
import reflex as rx
from reflex.istate.data import HeaderData
from reflex_base.constants import RouteVar

import app.app as composition
from app.audit.state import ANY_ACTION, PAGE_SIZE, AuditState
from app.auth import service as auth_service
from app.auth.cookies import SESSION_COOKIE
from app.auth.state import AuthState, UsersState
from app.core.db import session_scope
from app.core.settings import get_settings
from tests.audit.conftest import only
from tests.audit.test_read_and_export import write
from tests.predict.test_state import send, signed_in

HANDLERS = {"load", "edit_filter", "search", "clear_filters", "go_to_page"}


def test_the_page_is_guarded_for_admins_and_every_handler_needs_admin():
    guard, load = composition.app._load_events["admin/audit"]
    assert guard.handler.fn is AuthState.open_page.fn and guard.args[0][1]._var_value == "admin"
    assert load.fn is AuditState.load.fn
    roles = {
        name: h.fn.minimum_role.value for name, h in AuditState.event_handlers.items() if hasattr(h.fn, "minimum_role")
    }
    assert roles == dict.fromkeys(HANDLERS, "admin")


@pytest.mark.parametrize("role", ["viewer", "staff"])
async def test_staff_and_viewers_are_refused_the_page_and_its_handlers(make_user, admin, role):
    write(admin, "user.role_set", "someone@x.io", new={"role": "admin"})
    tab = signed_in(AuditState, make_user(f"{role}@x.io", role=role))
    await AuthState.open_page.fn(tab, "admin")
    assert tab.access == "denied" and "admin" in tab.denied_reason
    for handler, args in (
        (AuditState.load, ()),
        (AuditState.search, ()),
        (AuditState.go_to_page, (1,)),
        (AuditState.clear_filters, ()),
        (AuditState.edit_filter, ("filter_user", "x")),
    ):
        refusal = await send(tab, handler, *args)
        assert "admin role" in str(refusal), handler
    assert tab.entries == [] and tab.total == 0 and tab.filter_user == ""


async def test_an_admin_filters_pages_and_exports_what_is_shown(admin, staff):
    write(staff, "schedule.paused", "nightly", new={"paused": True})
    with session_scope() as db_session:
        from app.audit.service import record

        record(
            db_session=db_session,
            actor=admin,
            action="user.role_set",
            target="staff@x.io",
            old={"role": "staff"},
            new={"role": "admin"},
            address="10.0.0.9",
        )
    tab = signed_in(AuditState, admin)
    await send(tab, AuditState.load)
    newest = tab.entries[0]
    assert (newest.action, newest.actor, newest.address, newest.target) == (
        "user.role_set",
        "admin@x.io",
        "10.0.0.9",
        "staff@x.io",
    )
    assert newest.change == 'role: "staff" → "admin"' and newest.at.endswith(" UTC")
    assert "schedule.paused" in tab.actions and tab.filter_action == ANY_ACTION
    assert tab.export_url == "/api/v1/audit.csv"

    await send(tab, AuditState.edit_filter, "filter_user", "staff@")
    await send(tab, AuditState.edit_filter, "filter_action", "schedule.paused")
    await send(tab, AuditState.edit_filter, "filter_since", "2020-01-01T00:00")
    await send(tab, AuditState.search)
    assert [(row.action, row.target, row.change) for row in tab.entries] == [
        ("schedule.paused", "nightly", "paused: true")
    ]
    assert tab.export_url == ("/api/v1/audit.csv?user=staff%40&action=schedule.paused&since=2020-01-01T00%3A00")
    await send(tab, AuditState.edit_filter, "filter_until", "not a time")
    refusal = await send(tab, AuditState.search)
    assert "'Until' is a date and time" in str(refusal)

    await send(tab, AuditState.clear_filters)
    assert tab.filter_user == "" and tab.export_url == "/api/v1/audit.csv"
    for number in range(PAGE_SIZE + 5):
        write(admin, "dataset.created", f"set-{number}")
    await send(tab, AuditState.load)
    assert tab.page_count == 2 and len(tab.entries) == PAGE_SIZE
    await send(tab, AuditState.go_to_page, 2)
    assert tab.page == 2 and len(tab.entries) == tab.total - PAGE_SIZE
    await send(tab, AuditState.go_to_page, 99)
    assert tab.page == 2


async def test_a_change_on_a_page_records_the_websockets_address(admin, staff):
    root = rx.State(_reflex_internal_init=True)
    tab = root.get_substate(UsersState.get_full_name().split(".")[1:])
    with session_scope() as db_session:
        token = auth_service.create_session(db_session=db_session, settings=get_settings(), user=admin)
    # As Reflex fills it in from the websocket's handshake: the peer and the session cookie.
    tab.rx_router_headers = HeaderData.from_router_data(
        {RouteVar.HEADERS: {"cookie": f"{SESSION_COOKIE}={token}", "asgi-scope-client": "192.0.2.7"}}
    )
    await send(tab, UsersState.change_role, staff.id, "viewer")
    entry = only("user.role_set")
    assert (entry.actor, entry.address, entry.old_values, entry.new_values) == (
        "admin@x.io",
        "192.0.2.7",
        {"role": "staff"},
        {"role": "viewer"},
    )
