"""Audit fixtures: an admin, signed-in headers, and the entries an action left (read straight
from the table, so that a test of the log does not depend on the routes that read it)."""

import pytest
from sqlmodel import col, select

from app.audit.tables import AuditEntry
from app.core.db import session_scope
from tests.conftest import sign_in

# The schedules tests' fixtures: the dataset "reviews" and the built-in classifier in the registry.
from tests.schedules.conftest import classifier, reviews  # noqa: F401 - fixtures used here

# What the in-process test client's requests come from (httpx's ASGI transport).
CLIENT_ADDRESS = "127.0.0.1"


@pytest.fixture
def admin(make_user):
    return make_user("admin@x.io", role="admin")


@pytest.fixture
async def admin_headers(client, admin) -> dict:
    return await sign_in(client, admin.email)


@pytest.fixture
async def staff_headers(client, staff) -> dict:
    return await sign_in(client, staff.email)


@pytest.fixture
async def viewer_headers(client, viewer) -> dict:
    return await sign_in(client, viewer.email)


def entries(action: str | None = None, *, prefix: str | None = None) -> list[AuditEntry]:
    """Entries in the order they were written, of one action or of every action with a prefix."""
    query = select(AuditEntry).order_by(col(AuditEntry.id))
    if action is not None:
        query = query.where(AuditEntry.action == action)
    with session_scope() as db_session:
        found = list(db_session.exec(query))
    return [e for e in found if prefix is None or e.action.startswith(prefix)]


def only(action: str, target: str | None = None) -> AuditEntry:
    """The one entry of this action (about this target)."""
    found = [e for e in entries(action) if target is None or e.target == target]
    assert len(found) == 1, [(e.action, e.target) for e in entries()]
    return found[0]


def by_request(entry: AuditEntry, actor_email: str) -> None:
    """The entry names its actor and the address of the request that acted."""
    assert entry.actor == actor_email
    assert entry.actor_id is not None
    assert entry.address == CLIENT_ADDRESS
