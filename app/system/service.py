"""Live health of every component Strata depends on."""

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text

from app.auth.tables import User
from app.core import coalesce, migrations, ml
from app.core.clients import get_async_redis, get_chroma
from app.core.db import get_engine
from app.core.roles import Role, require_role
from app.core.security import redact_credentials
from app.core.settings import get_settings
from app.core.time import utcnow
from app.generation.service import describe_generator
from jobs.runtime import ARQ_QUEUE
from jobs.service import WORKER_HEARTBEAT_PREFIX
from models.manifest import list_manifests

CHECK_TIMEOUT_SECONDS = 4.0
PROBE_SENTENCE = "Strata checks that its embedding model answers."


@dataclass
class ComponentHealth:
    name: str
    ok: bool
    details: dict[str, str] = field(default_factory=dict)
    error: str = ""


def _database() -> dict[str, str]:
    engine = get_engine()
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    revision = migrations.current_revision(engine)
    head = migrations.head_revision()
    if revision != head:
        raise RuntimeError(f"Migrations not applied: at {revision}, code expects {head}. Run `strata migrate`.")
    return {"backend": engine.dialect.name, "migration": revision or "none"}


async def check_database() -> dict[str, str]:
    return await asyncio.to_thread(_database)


async def check_redis() -> dict[str, str]:
    async with get_async_redis() as redis:
        info = await redis.info()
    server = "valkey" if "valkey_version" in info else "redis"
    return {
        "server": server,
        "version": str(info.get("valkey_version") or info.get("redis_version")),
        "memory": str(info.get("used_memory_human")),
    }


def _chroma() -> dict[str, str]:
    client = get_chroma()
    client.heartbeat()
    return {"version": client.get_version(), "collections": str(client.count_collections())}


async def check_chroma() -> dict[str, str]:
    return await asyncio.to_thread(_chroma)


async def check_workers() -> dict[str, str]:
    settings = get_settings()
    async with get_async_redis() as redis:
        keys = [key async for key in redis.scan_iter(match=WORKER_HEARTBEAT_PREFIX + "*")]
        beats = [json.loads(value) for value in (await redis.mget(keys) if keys else []) if value]
        queued = await redis.zcard(ARQ_QUEUE)
    if not beats:
        raise RuntimeError(
            f"No worker has sent a heartbeat in the last {settings.worker_heartbeat_seconds * 3:.0f} s; "
            "jobs will wait. Start one with `strata worker`."
        )
    latest = max(datetime.fromisoformat(beat["last_beat"]) for beat in beats)
    return {
        "workers": str(len(beats)),
        "last heartbeat": f"{(utcnow() - latest).total_seconds():.1f} s ago",
        "queue length": str(queued),
    }


def _models() -> dict[str, str]:
    models_dir = get_settings().resolved_models_dir
    manifests = list_manifests(models_dir)
    if not manifests:
        raise RuntimeError(f"No models in {models_dir}. Run `strata models build`.")
    details = {}
    for manifest in manifests:
        path = models_dir / manifest.name / manifest.file
        if not path.exists() or path.stat().st_size != manifest.size_bytes:
            raise RuntimeError(f"{manifest.name}: {path} is missing or has the wrong size.")
        details[manifest.name] = (
            f"{manifest.file}, {manifest.size_bytes / 1e6:.1f} MB, sha256 {manifest.sha256[:12]}…, "
            f"parity {manifest.parity.min_cosine:.5f}"
        )
    started = time.perf_counter()
    ml.embed([PROBE_SENTENCE])
    details["embedder load time"] = f"{ml.get_embedder().load_seconds:.2f} s"
    details["probe inference"] = f"{(time.perf_counter() - started) * 1000:.1f} ms"
    generator = describe_generator()
    details["answers written by"] = f"{generator.model} ({generator.kind})"
    return details


async def check_models() -> dict[str, str]:
    return await asyncio.to_thread(_models)


CHECKS = {
    "database": check_database,
    "redis": check_redis,
    "chroma": check_chroma,
    "workers": check_workers,
    "models": check_models,
}


async def _run_check(name: str) -> ComponentHealth:
    started = time.perf_counter()
    try:
        details = await asyncio.wait_for(CHECKS[name](), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return ComponentHealth(name, False, error=f"No answer within {CHECK_TIMEOUT_SECONDS:.0f} s")
    except Exception as exc:
        return ComponentHealth(name, False, error=one_line(exc))
    details["checked in"] = f"{(time.perf_counter() - started) * 1000:.0f} ms"
    return ComponentHealth(name, True, details)


def one_line(exc: Exception) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact_credentials(f"{type(exc).__name__}: {message}")[:300]


# A web replica still serves pages without a worker, so a load balancer keeps it.
NON_CRITICAL = {"workers"}


@dataclass(frozen=True)
class HealthReport:
    components: list[ComponentHealth]
    checked_at: datetime

    @property
    def critical_down(self) -> list[str]:
        return [c.name for c in self.components if not c.ok and c.name not in NON_CRITICAL]

    @property
    def status(self) -> str:
        if self.critical_down:
            return "down"
        return "ok" if all(c.ok for c in self.components) else "degraded"

    @property
    def status_code(self) -> int:
        """For load balancers: 503 takes this replica out of rotation."""
        return 503 if self.critical_down else 200

    def public(self) -> dict:
        """What anyone may see: up or down per component. Error messages name internal
        hosts, ports and paths, so they are for staff (`detailed_health`)."""
        return {
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "components": {c.name: {"ok": c.ok} for c in self.components},
        }


_last_report: tuple[float, HealthReport] | None = None


async def _check_all() -> HealthReport:
    global _last_report
    components = list(await asyncio.gather(*(_run_check(name) for name in CHECKS)))
    report = HealthReport(components, utcnow())
    _last_report = (time.monotonic(), report)
    return report


async def health_report() -> HealthReport:
    """Every component's health, checked at most once per STRATA_HEALTH_CACHE_SECONDS:
    load balancers and open System pages poll it, and each check costs a database query,
    a Redis round trip, a Chroma call and a model inference. Callers arriving while a
    check runs share it."""
    if _last_report is not None and time.monotonic() - _last_report[0] < get_settings().health_cache_seconds:
        return _last_report[1]
    return await coalesce.shared("system health", _check_all)


async def detailed_health(*, actor: User) -> HealthReport:
    """The report with each component's details and errors, for staff."""
    require_role(actor, Role.staff)
    return await health_report()
