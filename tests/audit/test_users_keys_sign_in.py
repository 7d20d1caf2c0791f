"""Users and roles, API keys and their limits, sign-ins: each change done through the real
route leaves an entry with who, from where, and the values before and after, never a secret."""

import json

from tests.audit.conftest import CLIENT_ADDRESS, by_request, entries, only


async def test_user_changes_are_audited_with_old_and_new_values(client, admin_headers):
    created = await client.post(
        "/api/v1/users",
        headers=admin_headers,
        json={"email": "bob@x.io", "name": "Bob", "role": "viewer", "password": "bob-password-1"},
    )
    assert created.status_code == 201, created.text
    bob = created.json()["id"]
    assert (
        await client.patch(f"/api/v1/users/{bob}", headers=admin_headers, json={"role": "staff"})
    ).status_code == 200
    assert (
        await client.patch(f"/api/v1/users/{bob}", headers=admin_headers, json={"is_active": False})
    ).status_code == 200
    assert (
        await client.patch(f"/api/v1/users/{bob}", headers=admin_headers, json={"is_active": True})
    ).status_code == 200
    reset = await client.post(f"/api/v1/users/{bob}/reset-password", headers=admin_headers)
    assert reset.status_code == 200

    entry = only("user.created", "bob@x.io")
    by_request(entry, "admin@x.io")
    assert (entry.target, entry.target_id, entry.target_type) == ("bob@x.io", str(bob), "user")
    assert entry.new_values == {"email": "bob@x.io", "name": "Bob", "role": "viewer", "active": True}
    role = only("user.role_set")
    by_request(role, "admin@x.io")
    assert (role.old_values, role.new_values) == ({"role": "viewer"}, {"role": "staff"})
    assert only("user.deactivated").new_values == {"active": False}
    assert only("user.activated").old_values == {"active": False}
    password = only("user.password_reset")
    by_request(password, "admin@x.io")
    # Neither the chosen nor the generated password, nor a hash, is anywhere in the log.
    everything = json.dumps([(e.old_values, e.new_values, e.detail) for e in entries()])
    assert "bob-password-1" not in everything and reset.json()["password"] not in everything
    assert "argon2" not in everything and "hash" not in everything


async def test_api_keys_and_their_rate_limits_are_audited(client, admin_headers, staff):
    created = await client.post("/api/v1/keys", headers=admin_headers, json={"user_id": staff.id, "name": "ci"})
    assert created.status_code == 201
    key_id, plaintext = created.json()["id"], created.json()["key"]
    limit = f"/api/v1/api-keys/{key_id}/rate-limit"
    assert (await client.put(limit, headers=admin_headers, json={"requests_per_minute": 30})).status_code == 204
    assert (await client.put(limit, headers=admin_headers, json={"requests_per_minute": None})).status_code == 204
    assert (await client.delete(f"/api/v1/keys/{key_id}", headers=admin_headers)).status_code == 200

    made = only("api_key.created")
    by_request(made, "admin@x.io")
    assert made.target_id == str(key_id) and "staff@x.io" in made.target
    assert made.new_values["owner"] == "staff@x.io" and made.new_values["name"] == "ci"
    limits = entries("api_key.rate_limit_set")
    assert [(e.old_values, e.new_values) for e in limits] == [
        ({"requests_per_minute": None}, {"requests_per_minute": 30}),
        ({"requests_per_minute": 30}, {"requests_per_minute": None}),
    ]
    by_request(limits[0], "admin@x.io")
    revoked = only("api_key.revoked")
    assert (revoked.old_values, revoked.new_values) == ({"revoked": False}, {"revoked": True})
    assert plaintext not in json.dumps([(e.target, e.old_values, e.new_values) for e in entries()])


async def test_sign_ins_failures_and_sign_outs_are_audited_without_the_password(client, viewer):
    wrong = await client.post("/api/v1/auth/login", json={"email": "Viewer@x.io", "password": "not-my-password"})
    assert wrong.status_code == 401
    unknown = await client.post("/api/v1/auth/login", json={"email": "mallory@x.io", "password": "guess-123"})
    assert unknown.status_code == 401
    signed_in = await client.post("/api/v1/auth/login", json={"email": "viewer@x.io", "password": "password-123"})
    assert signed_in.status_code == 200
    token = signed_in.json()["token"]
    out = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204

    failures = entries("session.sign_in_failed")
    assert [(e.target, e.detail, e.actor, e.actor_id) for e in failures] == [
        ("viewer@x.io", "wrong password", "", None),
        ("mallory@x.io", "no such account", "", None),
    ]
    assert {e.address for e in failures} == {CLIENT_ADDRESS}
    assert failures[0].target_id == str(viewer.id)
    success = only("session.signed_in")
    by_request(success, "viewer@x.io")
    assert success.detail == "password"
    by_request(only("session.signed_out"), "viewer@x.io")
    logged = json.dumps([(e.target, e.detail, e.old_values, e.new_values) for e in entries()])
    assert "not-my-password" not in logged and "guess-123" not in logged and token not in logged


async def test_a_company_sign_in_that_fails_is_audited(client):
    # Company sign-in is not configured here: the provider's redirect back is refused, and said so.
    response = await client.get("/api/v1/auth/oidc/callback?code=x&state=y")
    assert response.status_code == 303 and "error=not_configured" in response.headers["location"]
    failure = only("session.sign_in_failed")
    assert (failure.detail, failure.address, failure.actor) == ("company: not_configured", CLIENT_ADDRESS, "")
