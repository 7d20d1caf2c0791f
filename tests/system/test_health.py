"""Health of real components: stop Valkey and watch it turn red, start it and watch it recover."""

import asyncio

import httpx
import pytest

from app.api import build_api
from app.core import migrations
from app.system.service import system_health


@pytest.fixture
async def client(db, redis_url, chroma_server):
    transport = httpx.ASGITransport(app=build_api())
    async with httpx.AsyncClient(transport=transport, base_url="http://strata") as client:
        yield client


async def test_all_components_up_with_their_details(client, workers):
    workers()
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        components = {c.name: c for c in await system_health()}
        if components["workers"].ok or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert all(c.ok for c in components.values()), {n: c.error for n, c in components.items()}
    assert components["database"].details["migration"] == migrations.head_revision()
    assert components["redis"].details["server"] == "valkey"
    assert components["chroma"].details["version"]
    assert components["workers"].details["workers"] == "1"
    assert "model.onnx" in components["models"].details["all-MiniLM-L6-v2"]
    response = await client.get("/api/v1/health")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_health_without_worker_is_degraded_but_serving(client):
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert "No worker" in body["components"]["workers"]["error"]


async def test_redis_down_is_reported_and_recovers(client, valkey_server):
    valkey_server.stop()
    try:
        response = await client.get("/api/v1/health")
        assert response.status_code == 503
        assert response.json()["components"]["redis"]["ok"] is False
        assert "Connection" in response.json()["components"]["redis"]["error"]
    finally:
        valkey_server.start()
    recovered = await client.get("/api/v1/health")
    assert recovered.json()["components"]["redis"] == {"ok": True}


async def test_missing_models_are_reported(client, monkeypatch, tmp_path):
    from tests.conftest import reset_caches

    monkeypatch.setenv("STRATA_MODELS_DIR", str(tmp_path))
    reset_caches()
    components = {c.name: c for c in await system_health()}
    assert not components["models"].ok
    assert "strata models build" in components["models"].error


async def test_models_probe_feeds_the_inference_latency_metric(client):
    components = {c.name: c for c in await system_health()}
    assert components["models"].ok, components["models"].error
    assert components["models"].details["probe inference"].endswith("ms")
    metrics = (await client.get("/metrics")).text
    assert 'strata_model_inference_duration_seconds_count{model="all-MiniLM-L6-v2"}' in metrics


async def test_chroma_down_is_reported_and_recovers(client, chroma_server):
    assert (await client.get("/api/v1/health")).json()["components"]["chroma"] == {"ok": True}
    chroma_server.stop()
    try:
        down = (await client.get("/api/v1/health")).json()
        assert down["status"] == "down" and down["components"]["chroma"]["ok"] is False
        assert down["components"]["chroma"]["error"]
    finally:
        chroma_server.start()
    assert (await client.get("/api/v1/health")).json()["components"]["chroma"] == {"ok": True}
