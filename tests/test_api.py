import asyncio
import re

import httpx
import pytest
from sqlmodel import select

from app.api import build_api
from tests.conftest import sign_in


async def test_me_needs_credentials_and_says_how(client):
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert "Bearer" in response.json()["detail"]
    assert (await client.get("/api/v1/me", headers={"Authorization": "Basic abc"})).status_code == 401


async def test_admin_manages_users_and_keys_and_a_key_acts_as_its_owner(client, make_user):
    make_user("admin@x.io", role="admin")
    admin = await sign_in(client, "admin@x.io", "password-123")
    created = await client.post(
        "/api/v1/users", headers=admin, json={"email": "v@x.io", "role": "viewer", "password": "viewer-pass"}
    )
    assert created.status_code == 201
    viewer_id = created.json()["id"]
    key = await client.post("/api/v1/keys", headers=admin, json={"user_id": viewer_id, "name": "script"})
    assert key.status_code == 201 and key.json()["key"].startswith("sk-strata-")
    as_key = {"Authorization": f"Bearer {key.json()['key']}"}
    me = await client.get("/api/v1/me", headers=as_key)
    assert me.json()["email"] == "v@x.io" and me.json()["role"] == "viewer"
    listed = await client.get("/api/v1/keys", headers=admin)
    assert "key" not in listed.json()[0] and "key_hash" not in listed.json()[0]
    assert (await client.delete(f"/api/v1/keys/{key.json()['id']}", headers=admin)).status_code == 200
    revoked = await client.get("/api/v1/me", headers=as_key)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]


async def test_viewer_is_refused_admin_and_staff_routes(client, make_user):
    make_user("v@x.io", role="viewer")
    viewer = await sign_in(client, "v@x.io", "password-123")
    for method, path in [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/keys"),
        ("GET", "/api/v1/jobs"),
        ("PATCH", "/api/v1/users/1"),
        ("POST", "/api/v1/jobs"),
    ]:
        response = await client.request(method, path, headers=viewer, json={"kind": "verify_models", "user_id": 1})
        assert response.status_code == 403, (method, path, response.text)
        assert "needs the" in response.json()["detail"]


async def test_staff_cannot_manage_users(client, make_user):
    make_user("s@x.io", role="staff")
    staff = await sign_in(client, "s@x.io", "password-123")
    assert (
        await client.post("/api/v1/users", headers=staff, json={"email": "z@x.io", "password": "12345678"})
    ).status_code == 403


async def test_errors_are_json_without_stack_traces(client, make_user):
    make_user("admin@x.io", role="admin")
    admin = await sign_in(client, "admin@x.io", "password-123")
    missing = await client.patch("/api/v1/users/9999", headers=admin, json={"role": "staff"})
    assert missing.status_code == 404 and missing.json() == {"detail": "No user with id 9999."}
    invalid = await client.post("/api/v1/users", headers=admin, json={"email": "x@y.z", "password": 5})
    assert invalid.status_code == 422 and "password" in invalid.json()["detail"]
    assert "Traceback" not in invalid.text
    unknown = await client.get("/api/v1/nothing-here", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("No API route")


async def test_session_logout_ends_the_session(client, make_user):
    make_user("u@x.io")
    headers = await sign_in(client, "u@x.io", "password-123")
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401


async def test_jobs_api_queues_lists_and_cancels(client, make_user):
    make_user("s@x.io", role="staff")
    staff = await sign_in(client, "s@x.io", "password-123")
    kinds = await client.get("/api/v1/jobs/kinds", headers=staff)
    assert {"kind": "verify_models", "title": "Verify models", "minimum_role": "staff"} in kinds.json()
    unknown = await client.post("/api/v1/jobs", headers=staff, json={"kind": "mine_bitcoin"})
    assert unknown.status_code == 422 and "Unknown job kind" in unknown.json()["detail"]
    started = await client.post("/api/v1/jobs", headers=staff, json={"kind": "verify_models"})
    assert started.status_code == 202 and started.json()["status"] == "queued"
    job_id = started.json()["id"]
    listed = await client.get("/api/v1/jobs", headers=staff)
    assert [job["id"] for job in listed.json()] == [job_id]
    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=staff)
    assert cancelled.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=staff)
    assert again.status_code == 409
    retried = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=staff)
    assert retried.status_code == 202 and retried.json()["id"] != job_id
    metrics = (await client.get("/metrics")).text
    assert 'strata_jobs{kind="verify_models",status="cancelled"} 1.0' in metrics
    assert 'strata_jobs{kind="verify_models",status="queued"} 1.0' in metrics


async def test_metrics_count_requests(client):
    await client.get("/api/v1/me")
    body = (await client.get("/metrics")).text
    assert 'strata_http_requests_total{method="GET",route="/api/v1/me",status="401"}' in body
    assert "strata_http_request_duration_seconds_bucket" in body


async def test_openapi_docs_are_served(client):
    assert (await client.get("/api/docs")).status_code == 200
    paths = (await client.get("/api/openapi.json")).json()["paths"]
    assert "/api/v1/health" in paths and "/api/v1/jobs" in paths


async def test_starting_a_job_while_redis_is_down_is_a_clear_503_and_the_job_is_kept_as_failed(
    client, make_user, valkey_server
):
    make_user("s@x.io", role="staff")
    staff = await sign_in(client, "s@x.io", "password-123")
    valkey_server.stop()
    try:
        response = await client.post("/api/v1/jobs", headers=staff, json={"kind": "verify_models"})
    finally:
        valkey_server.start()
    assert response.status_code == 503
    assert "job queue (Redis) is unreachable" in response.json()["detail"]
    (job,) = (await client.get("/api/v1/jobs", headers=staff)).json()
    assert job["status"] == "failed" and job["message"] == "Could not reach the job queue"
    retried = await client.post(f"/api/v1/jobs/{job['id']}/retry", headers=staff)
    assert retried.status_code == 202 and retried.json()["status"] == "queued"


async def test_an_unexpected_error_is_a_json_500_that_names_the_request(db, redis_url):
    api = build_api()

    @api.get("/api/v1/broken-on-purpose")
    def broken() -> None:
        raise RuntimeError("a bug")

    api.router.routes.insert(0, api.router.routes.pop())  # before the catch-all /api/{path}
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        response = await client.get("/api/v1/broken-on-purpose", headers={"X-Request-Id": "req-7"})
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 500 and response.headers["x-request-id"] == "req-7"
    assert response.json() == {"detail": "Internal server error", "request_id": "req-7"}
    assert 'strata_http_requests_total{method="GET",route="/api/v1/broken-on-purpose",status="500"}' in metrics


async def _staff_key(client, admin: dict) -> tuple[int, dict]:
    staff = await client.post(
        "/api/v1/users", headers=admin, json={"email": "s@x.io", "role": "staff", "password": "staff-pass"}
    )
    key = await client.post("/api/v1/keys", headers=admin, json={"user_id": staff.json()["id"], "name": "ci"})
    return staff.json()["id"], {"Authorization": f"Bearer {key.json()['key']}"}


async def test_a_demoted_or_deactivated_user_loses_access_on_the_next_request(client, make_user):
    make_user("admin@x.io", role="admin")
    admin = await sign_in(client, "admin@x.io", "password-123")
    staff_id, as_staff = await _staff_key(client, admin)
    label_set = {"labels": [{"name": "a"}, {"name": "b"}]}
    # Used just before the change, so the key was checked moments ago.
    assert (await client.get("/api/v1/me", headers=as_staff)).json()["role"] == "staff"
    await client.patch(f"/api/v1/users/{staff_id}", headers=admin, json={"role": "viewer"})
    refused = await client.post("/api/v1/models/zero-shot-classifier/versions", headers=as_staff, json=label_set)
    assert refused.status_code == 403 and "staff role" in refused.json()["detail"]
    assert (await client.get("/api/v1/me", headers=as_staff)).json()["role"] == "viewer"
    await client.patch(f"/api/v1/users/{staff_id}", headers=admin, json={"is_active": False})
    assert (await client.get("/api/v1/me", headers=as_staff)).status_code == 401


async def test_a_password_reset_ends_sessions_on_the_next_request(client, make_user):
    make_user("admin@x.io", role="admin")
    user = make_user("u@x.io")
    admin = await sign_in(client, "admin@x.io", "password-123")
    session = await sign_in(client, "u@x.io", "password-123")
    assert (await client.get("/api/v1/me", headers=session)).status_code == 200
    await client.post(f"/api/v1/users/{user.id}/reset-password", headers=admin)
    assert (await client.get("/api/v1/me", headers=session)).status_code == 401


async def test_a_key_revoked_by_another_process_is_refused_within_the_credential_cache_time(client, make_user):
    from app.auth.service import CREDENTIAL_CACHE_SECONDS
    from app.auth.tables import ApiKey
    from app.core.db import session_scope
    from app.core.time import utcnow

    make_user("admin@x.io", role="admin")
    admin = await sign_in(client, "admin@x.io", "password-123")
    _, as_staff = await _staff_key(client, admin)
    assert (await client.get("/api/v1/me", headers=as_staff)).status_code == 200
    # What another web replica's revoke leaves behind: the row changed, this process not told.
    with session_scope() as db_session:
        for key in db_session.exec(select(ApiKey)):
            key.revoked_at = utcnow()
            db_session.add(key)
    await asyncio.sleep(CREDENTIAL_CACHE_SECONDS)
    assert (await client.get("/api/v1/me", headers=as_staff)).status_code == 401


async def test_a_sane_request_id_is_echoed_and_any_other_replaced(client):
    sane = await client.get("/api/v1/me", headers={"X-Request-ID": "lb-7f3a.req_42"})
    assert sane.headers["x-request-id"] == "lb-7f3a.req_42"
    for hostile in ("x" * 5000, "a b", "<script>alert(1)</script>", "id\x7f"):
        response = await client.get("/api/v1/me", headers={"X-Request-ID": hostile})
        echoed = response.headers["x-request-id"]
        assert echoed != hostile and re.fullmatch(r"[0-9a-f]{32}", echoed), echoed


@pytest.fixture
def prod(db, monkeypatch):
    """Production settings for one test (and back to the test defaults after it)."""
    from app.core.settings import get_settings

    monkeypatch.setenv("STRATA_ENV", "prod")
    monkeypatch.setenv("STRATA_SECRET_KEY", "a-production-secret-of-forty-characters!")
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


async def test_metrics_and_api_docs_are_for_admins_in_production(client, make_user, prod):
    make_user("admin@x.io", role="admin")
    make_user("v@x.io", role="viewer")
    admin = await sign_in(client, "admin@x.io", "password-123")
    viewer = await sign_in(client, "v@x.io", "password-123")
    client.cookies.clear()  # the last sign-in's session cookie
    for path in ("/metrics", "/api/docs", "/api/openapi.json"):
        assert (await client.get(path)).status_code == 401, path
        assert (await client.get(path, headers=viewer)).status_code == 403, path
        assert (await client.get(path, headers=admin)).status_code == 200, path
    assert "/api/v1/health" in (await client.get("/api/openapi.json", headers=admin)).json()["paths"]


async def test_a_prometheus_scraper_reads_metrics_with_its_token_and_settings_can_open_them(client, prod):
    from app.core.settings import get_settings

    prod.setenv("STRATA_METRICS_TOKEN", "scraper-token-0123456789")
    get_settings.cache_clear()
    scraper = {"Authorization": "Bearer scraper-token-0123456789"}
    assert "strata_http_requests_total" in (await client.get("/metrics", headers=scraper)).text
    assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong-token"})).status_code == 401
    prod.setenv("STRATA_PUBLIC_METRICS", "true")
    prod.setenv("STRATA_PUBLIC_API_DOCS", "true")
    get_settings.cache_clear()
    assert (await client.get("/metrics")).status_code == 200
    assert (await client.get("/api/openapi.json")).status_code == 200


def _stream(total: int, sent: list[int], piece: int = 64 * 1024):
    """A body of `total` bytes sent in pieces; `sent` counts the pieces the server asked for."""

    async def pieces():
        for _ in range(total // piece):
            sent.append(piece)
            yield b"x" * piece

    return pieces()


async def test_an_oversized_json_body_is_refused_as_it_arrives_before_sign_in(client, settings):
    limit = settings.request_max_kb * 1024
    sent: list[int] = []
    response = await client.post(
        "/api/v1/auth/login", content=_stream(20 * limit, sent), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413 and "larger than this route accepts" in response.json()["detail"]
    assert limit < sum(sent) <= limit + 64 * 1024  # stopped reading one piece past the limit
    declared = await client.post(
        "/api/v1/ask",
        content=b"{}",
        headers={"Content-Type": "application/json", "Content-Length": str(100 * limit)},
    )
    assert declared.status_code == 413
    # Within the limit, the route answers as before.
    assert (await client.post("/api/v1/auth/login", json={"email": "a@b.c", "password": "x"})).status_code == 401


def test_openapi_publishes_the_role_each_route_needs():
    """x-strata-minimum-role tells clients (and the fuzz test's role check) who may call a route;
    uploads are checked in their services, so their routes must declare staff too."""
    paths = build_api().openapi()["paths"]
    assert {
        (method, path): paths[path][method]["x-strata-minimum-role"]
        for method, path in (
            ("post", "/api/v1/auth/login"),
            ("post", "/api/v1/search"),
            ("post", "/api/v1/knowledge/{knowledge_base_id}/documents"),
            ("post", "/api/v1/datasets"),
            ("post", "/api/v1/batch-jobs"),
            ("get", "/api/v1/batch-jobs"),
            ("post", "/api/v1/jobs"),
            ("get", "/api/v1/users"),
            ("get", "/api/v1/system/storage"),
        )
    } == {
        ("post", "/api/v1/auth/login"): "public",
        ("post", "/api/v1/search"): "viewer",
        ("post", "/api/v1/knowledge/{knowledge_base_id}/documents"): "staff",
        ("post", "/api/v1/datasets"): "staff",
        ("post", "/api/v1/batch-jobs"): "staff",
        ("get", "/api/v1/batch-jobs"): "viewer",
        ("post", "/api/v1/jobs"): "staff",
        ("get", "/api/v1/users"): "admin",
        ("get", "/api/v1/system/storage"): "admin",
    }
