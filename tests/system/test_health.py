"""Health of real components: stop Valkey and watch it turn red, start it and watch it recover."""

import asyncio

import httpx
import pytest

from app.api import build_api
from app.core import migrations
from app.core.security import redact_credentials
from app.system.service import health_report


@pytest.fixture
def health_cache_seconds(db, monkeypatch):
    """Sets how long a health check is reused (0: every call checks again)."""
    from app.core.settings import get_settings

    def set_to(seconds: float) -> None:
        monkeypatch.setenv("STRATA_HEALTH_CACHE_SECONDS", str(seconds))
        get_settings.cache_clear()

    set_to(0)
    yield set_to
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
async def client(db, redis_url, chroma_server, health_cache_seconds):
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        yield client


async def components() -> dict:
    return {c.name: c for c in (await health_report()).components}


async def as_staff(client, make_user) -> dict:
    make_user("staff@x.io", role="staff")
    response = await client.post("/api/v1/auth/login", json={"email": "staff@x.io", "password": "password-123"})
    client.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_all_components_up_with_their_details(client, workers):
    workers()
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        found = await components()
        if found["workers"].ok or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert all(c.ok for c in found.values()), {n: c.error for n, c in found.items()}
    assert found["database"].details["migration"] == migrations.head_revision()
    assert found["redis"].details["server"] == "valkey"
    assert found["chroma"].details["version"]
    assert found["workers"].details["workers"] == "1"
    assert "model.onnx" in found["models"].details["all-MiniLM-L6-v2"]
    response = await client.get("/api/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_health_without_worker_is_degraded_but_serving_and_staff_see_why(client, make_user):
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded" and body["components"]["workers"] == {"ok": False}
    staff = await as_staff(client, make_user)
    detailed = {c["name"]: c for c in (await client.get("/api/v1/system", headers=staff)).json()}
    assert "No worker" in detailed["workers"]["error"]


async def test_the_detailed_report_is_for_staff(client, make_user):
    make_user("v@x.io", role="viewer")
    login = await client.post("/api/v1/auth/login", json={"email": "v@x.io", "password": "password-123"})
    client.cookies.clear()
    viewer = {"Authorization": f"Bearer {login.json()['token']}"}
    assert (await client.get("/api/v1/system")).status_code == 401
    assert (await client.get("/api/v1/system", headers=viewer)).status_code == 403


async def test_redis_down_is_reported_without_internal_hosts_and_recovers(client, make_user, valkey_server):
    staff = await as_staff(client, make_user)
    valkey_server.stop()
    try:
        response = await client.get("/api/v1/health")
        detailed = {c["name"]: c for c in (await client.get("/api/v1/system", headers=staff)).json()}
    finally:
        valkey_server.start()
    assert response.status_code == 503
    assert response.json()["components"]["redis"] == {"ok": False}
    # Anyone may read /api/v1/health: it names no host, port or path of the installation.
    assert "127.0.0.1" not in response.text and str(valkey_server.port) not in response.text
    assert "Connection" in detailed["redis"]["error"]
    recovered = await client.get("/api/v1/health")
    assert recovered.json()["components"]["redis"] == {"ok": True}


async def test_concurrent_callers_share_one_check_and_it_is_reused_for_a_while(
    client, valkey_server, health_cache_seconds
):
    health_cache_seconds(600)
    answers = await asyncio.gather(*(client.get("/api/v1/health") for _ in range(5)))
    assert len({answer.json()["checked_at"] for answer in answers}) == 1
    valkey_server.stop()
    try:
        cached = await client.get("/api/v1/health")
    finally:
        valkey_server.start()
    assert cached.json() == answers[0].json()  # not checked again: Redis down went unseen
    health_cache_seconds(0)
    assert (await client.get("/api/v1/health")).json()["checked_at"] != answers[0].json()["checked_at"]


async def test_missing_models_are_reported(client, monkeypatch, tmp_path):
    from tests.conftest import reset_caches

    monkeypatch.setenv("STRATA_MODELS_DIR", str(tmp_path))
    reset_caches()
    found = await components()
    assert not found["models"].ok
    assert "strata models build" in found["models"].error


async def test_models_probe_feeds_the_inference_latency_metric(client):
    found = await components()
    assert found["models"].ok, found["models"].error
    assert found["models"].details["probe inference"].endswith("ms")
    metrics = (await client.get("/metrics")).text
    assert 'strata_model_inference_duration_seconds_count{model="all-MiniLM-L6-v2"}' in metrics


async def test_chroma_down_is_reported_and_recovers(client, chroma_server):
    assert (await client.get("/api/v1/health")).json()["components"]["chroma"] == {"ok": True}
    chroma_server.stop()
    try:
        down = (await client.get("/api/v1/health")).json()
        assert down["status"] == "down" and down["components"]["chroma"] == {"ok": False}
    finally:
        chroma_server.start()
    assert (await client.get("/api/v1/health")).json()["components"]["chroma"] == {"ok": True}


def test_credentials_in_urls_are_redacted_from_component_errors():
    message = "OperationalError: cannot reach postgresql+psycopg://strata:s3cr@t@db.internal:5432/strata"
    assert (
        redact_credentials(message) == "OperationalError: cannot reach postgresql+psycopg://***@db.internal:5432/strata"
    )
    assert redact_credentials("redis://:pw@10.0.0.5:6379/0 and http://plain.host/x") == (
        "redis://***@10.0.0.5:6379/0 and http://plain.host/x"
    )
