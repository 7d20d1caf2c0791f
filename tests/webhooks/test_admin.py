"""Webhooks are for admins: staff are refused, URLs must be http(s), unknown ids are 404, and
every change is in the audit log without the secret."""

import pytest
from sqlmodel import select

from app.audit.tables import AuditEntry
from app.core.db import session_scope
from tests.conftest import sign_in


@pytest.fixture
async def admin_headers(client, make_user) -> dict:
    make_user("admin@x.io", role="admin")
    return await sign_in(client, "admin@x.io")


async def test_staff_may_not_see_or_change_webhooks(client, staff):
    headers = await sign_in(client, staff.email)
    assert (await client.get("/api/v1/webhooks", headers=headers)).status_code == 403
    created = await client.post(
        "/api/v1/webhooks", headers=headers, json={"name": "x", "url": "https://chat.example/h"}
    )
    assert created.status_code == 403
    assert (await client.get("/api/v1/webhooks/deliveries", headers=headers)).status_code == 403


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://chat.example/", "ftp://chat.example/x", "https://"])
async def test_only_http_and_https_urls_are_accepted(client, admin_headers, url):
    response = await client.post("/api/v1/webhooks", headers=admin_headers, json={"name": "x", "url": url})
    assert response.status_code == 422
    assert "URL" in response.json()["detail"]


async def test_bad_input_unknown_ids_and_names_in_use_are_refused(client, admin_headers):
    body = {"name": "ops", "url": "https://chat.example/hooks/T1/B2/c3c3c3", "secret": "short"}
    short = await client.post("/api/v1/webhooks", headers=admin_headers, json=body)
    assert short.status_code == 422 and "at least 16" in short.json()["detail"]
    none = await client.post("/api/v1/webhooks", headers=admin_headers, json={**body, "secret": None, "kinds": []})
    assert none.status_code == 422 and "at least one alert kind" in none.json()["detail"]
    ok = await client.post("/api/v1/webhooks", headers=admin_headers, json={**body, "secret": "s" * 20})
    assert ok.status_code == 201 and ok.json()["secret"] == "s" * 20
    twice = await client.post("/api/v1/webhooks", headers=admin_headers, json={**body, "secret": "s" * 20})
    assert twice.status_code == 409
    for method, path in (
        ("patch", "/api/v1/webhooks/999"),
        ("delete", "/api/v1/webhooks/999"),
        ("post", "/api/v1/webhooks/999/test"),
    ):
        response = await client.request(method, path, headers=admin_headers, json={} if method == "patch" else None)
        assert response.status_code == 404 and response.json()["detail"] == "No webhook with id 999."


async def test_changes_are_audited_without_the_secret_or_the_url_path(client, admin_headers):
    body = {"name": "ops", "url": "https://chat.example/hooks/T1/B2/c3c3c3", "secret": "a-very-secret-value!"}
    webhook = (await client.post("/api/v1/webhooks", headers=admin_headers, json=body)).json()
    changed = await client.patch(
        f"/api/v1/webhooks/{webhook['id']}", headers=admin_headers, json={"enabled": False, "secret": "b" * 24}
    )
    assert changed.status_code == 200 and changed.json()["enabled"] is False and "secret" not in changed.json()
    assert (await client.delete(f"/api/v1/webhooks/{webhook['id']}", headers=admin_headers)).status_code == 204
    assert (await client.get("/api/v1/webhooks", headers=admin_headers)).json() == []
    with session_scope() as db_session:
        entries = db_session.exec(select(AuditEntry).order_by(AuditEntry.id)).all()
    webhook_entries = [entry for entry in entries if entry.target_type == "webhook"]
    assert [entry.action for entry in webhook_entries] == ["webhook.created", "webhook.updated", "webhook.deleted"]
    assert webhook_entries[1].detail == "The signing secret was replaced."
    assert webhook_entries[1].new_values["enabled"] is False
    text = repr([(entry.old_values, entry.new_values, entry.detail) for entry in webhook_entries])
    assert "a-very-secret-value!" not in text and "b" * 24 not in text and "c3c3c3" not in text
    assert all(entry.actor == "admin@x.io" for entry in webhook_entries)
