import json

import httpx
import pytest
import structlog

from app.api import build_api
from app.core.logging import configure_logging


@pytest.fixture
def json_logs(capsys):
    configure_logging("INFO")
    return capsys


async def test_api_logs_are_json_with_request_and_user_ids_and_no_secrets(db, redis_url, make_user, json_logs):
    make_user("u@x.io", password="very-secret-password")
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        login = await client.post("/api/v1/auth/login", json={"email": "u@x.io", "password": "very-secret-password"})
        token = login.json()["token"]
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-42"})
    assert me.headers["x-request-id"] == "req-42"
    output = json_logs.readouterr().out
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    me_log = next(r for r in records if r.get("path") == "/api/v1/me")
    assert me_log["request_id"] == "req-42" and me_log["status"] == 200
    assert me_log["user_id"] == me.json()["id"]
    assert "very-secret-password" not in output and token not in output


def test_secret_fields_are_redacted(json_logs):
    structlog.get_logger("strata").info(
        "event", password="hunter22", api_key="sk-strata-abc", session_token="t", email="a@b.c", api_key_id=7
    )
    record = json.loads(json_logs.readouterr().out.strip().splitlines()[-1])
    assert record["password"] == record["api_key"] == record["session_token"] == "[redacted]"
    assert record["email"] == "a@b.c" and record["api_key_id"] == 7


async def test_admin_actions_are_audited_with_the_acting_user(db, redis_url, make_user, json_logs):
    make_user("admin@x.io", role="admin")
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        token = (
            await client.post("/api/v1/auth/login", json={"email": "admin@x.io", "password": "password-123"})
        ).json()["token"]
        created = await client.post(
            "/api/v1/users",
            headers={"Authorization": f"Bearer {token}"},
            json={"email": "new@x.io", "role": "staff", "password": "new-password"},
        )
    records = [json.loads(line) for line in json_logs.readouterr().out.splitlines() if line.startswith("{")]
    audit = next(r for r in records if r["event"] == "user.created" and r["target_id"] == str(created.json()["id"]))
    assert audit["new"]["role"] == "staff" and audit["actor"] == "admin@x.io" and audit["user_id"] is not None
