"""GET /api/v1/audit and /api/v1/audit.csv: admins filter by user, action and time, page
through, and export the same selection as CSV that a spreadsheet cannot run; staff and
viewers are refused."""

import csv
import io
from datetime import timedelta

from app.audit.service import record
from app.audit.tables import AuditEntry
from app.core.db import session_scope
from app.core.time import utcnow


def write(actor, action: str, target: str, *, at=None, new=None, address="10.0.0.1") -> None:
    with session_scope() as db_session:
        if at is None:
            record(db_session=db_session, actor=actor, action=action, target=target, new=new, address=address)
        else:  # an entry from the past, as it would have been written then
            db_session.add(
                AuditEntry(
                    at=at,
                    actor=actor.email,
                    actor_id=actor.id,
                    address=address,
                    action=action,
                    target_type=action.split(".")[0],
                    target=target,
                    new_values=new,
                )
            )


async def test_admins_filter_by_user_action_and_time(client, admin_headers, admin, staff):
    write(staff, "schedule.created", "nightly", at=utcnow() - timedelta(days=3))
    write(staff, "dataset.created", "reviews")
    write(admin, "user.role_set", "staff@x.io", new={"role": "admin"})

    def targets(response):
        assert response.status_code == 200, response.text
        return [entry["target"] for entry in response.json()["entries"]]

    everything = await client.get("/api/v1/audit", headers=admin_headers)
    # Newest first, with the fixtures' entries (users created, the admin's sign-in) before these.
    assert targets(everything)[:2] == ["staff@x.io", "reviews"] and targets(everything)[-1] == "nightly"
    # The user filter matches who acted, and whom a user entry is about (its creation by the fixture too).
    by_staff = await client.get("/api/v1/audit", headers=admin_headers, params={"user": "STAFF@"})
    assert targets(by_staff) == ["staff@x.io", "reviews", "staff@x.io", "nightly"]
    exact = await client.get("/api/v1/audit", headers=admin_headers, params={"action": "dataset.created"})
    assert targets(exact) == ["reviews"]
    of_a_type = await client.get("/api/v1/audit", headers=admin_headers, params={"action": "schedule"})
    assert targets(of_a_type) == ["nightly"]
    since = (utcnow() - timedelta(days=1)).isoformat()
    recent = await client.get("/api/v1/audit", headers=admin_headers, params={"since": since, "user": "staff@x.io"})
    assert "nightly" not in targets(recent) and "reviews" in targets(recent)
    until = (utcnow() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")  # no offset: UTC
    old = await client.get("/api/v1/audit", headers=admin_headers, params={"until": until})
    assert targets(old) == ["nightly"]
    entry = old.json()["entries"][0]
    assert (entry["actor"], entry["address"], entry["action"], entry["target_type"]) == (
        "staff@x.io",
        "10.0.0.1",
        "schedule.created",
        "schedule",
    )


async def test_pages_and_bad_filters(client, admin_headers, admin):
    for number in range(5):
        write(admin, "dataset.created", f"set-{number}")
    first = await client.get("/api/v1/audit", headers=admin_headers, params={"action": "dataset", "page_size": 2})
    second = await client.get(
        "/api/v1/audit", headers=admin_headers, params={"action": "dataset", "page_size": 2, "page": 3}
    )
    assert first.json()["total"] == 5 and [e["target"] for e in first.json()["entries"]] == ["set-4", "set-3"]
    assert [e["target"] for e in second.json()["entries"]] == ["set-0"]

    too_big = await client.get("/api/v1/audit", headers=admin_headers, params={"page_size": 201})
    assert too_big.status_code == 422 and "page_size" in too_big.json()["detail"]
    backwards = await client.get(
        "/api/v1/audit", headers=admin_headers, params={"since": "2026-02-01T00:00", "until": "2026-01-01T00:00"}
    )
    assert backwards.status_code == 422 and backwards.json()["detail"] == "'since' must be before 'until'."
    not_a_time = await client.get("/api/v1/audit.csv", headers=admin_headers, params={"since": "yesterday"})
    assert not_a_time.status_code == 422 and "since" in not_a_time.json()["detail"]


async def test_the_csv_export_has_the_filtered_entries_and_escapes_formulas(client, admin_headers, admin):
    write(admin, "knowledge_base.created", '=HYPERLINK("http://evil")', new={"name": "@SUM(A1)", "n": -3})
    write(admin, "knowledge_base.created", "+cmd|' /C calc'!A0")
    write(admin, "knowledge_base.created", "-2+3")
    write(admin, "dataset.created", "plain")

    response = await client.get("/api/v1/audit.csv", headers=admin_headers, params={"action": "knowledge_base"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["target"] for row in rows] == ["'-2+3", "'+cmd|' /C calc'!A0", '\'=HYPERLINK("http://evil")']
    assert {row["actor"] for row in rows} == {"admin@x.io"} and {row["address"] for row in rows} == {"10.0.0.1"}
    assert rows[2]["new"] == '{"n": -3, "name": "@SUM(A1)"}'  # JSON starts with {, which runs nothing
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())


async def test_the_csv_export_streams_every_entry_past_one_batch(client, admin_headers, admin, monkeypatch):
    from app.audit import service

    monkeypatch.setattr(service, "EXPORT_BATCH_ROWS", 3)
    for number in range(7):
        write(admin, "dataset.created", f"set-{number}")
    response = await client.get("/api/v1/audit.csv", headers=admin_headers, params={"action": "dataset.created"})
    assert [row["target"] for row in csv.DictReader(io.StringIO(response.text))] == [
        f"set-{number}" for number in reversed(range(7))
    ]


async def test_staff_and_viewers_are_refused(client, staff_headers, viewer_headers):
    for headers in (staff_headers, viewer_headers):
        for path in ("/api/v1/audit", "/api/v1/audit.csv"):
            response = await client.get(path, headers=headers)
            assert response.status_code == 403, (path, response.text)
            assert "admin" in response.json()["detail"]
    client.cookies.clear()  # the sign-ins' session cookie
    assert (await client.get("/api/v1/audit")).status_code == 401
