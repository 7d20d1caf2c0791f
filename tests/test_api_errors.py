"""Numbers past what the database stores are the client's mistake on every route and backend:
a clear 422, never a 500 (found by tests/test_api_fuzz.py)."""

import httpx
import pytest

from app.api import build_api

HUGE = 10**30


@pytest.fixture
async def admin_client(db, redis_url, make_user):
    make_user("root@x.io", role="admin")
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata", timeout=60) as client:
        login = await client.post("/api/v1/auth/login", json={"email": "root@x.io", "password": "password-123"})
        client.headers["Authorization"] = f"Bearer {login.json()['token']}"
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/conversations/{HUGE}", None),
        ("GET", f"/api/v1/knowledge/documents/{HUGE}", None),
        ("PUT", f"/api/v1/api-keys/{HUGE}/rate-limit", {"requests_per_minute": None}),
        ("POST", "/api/v1/keys", {"user_id": HUGE, "name": "k"}),
    ],
)
async def test_an_out_of_range_number_is_a_clear_422(admin_client, method, path, body):
    response = await admin_client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": "Invalid request: a number in it is out of range."}
