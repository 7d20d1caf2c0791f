"""What each store holds and how big it is, for admins (the System page's Storage section and
GET /api/v1/system/storage): the database (size and the rows of the tables that grow), Redis
(memory and keys), Chroma (vectors per collection), the files (per area of the file store, a
files root or an S3 bucket, and this machine's scratch), and when
each retention job last ran and what it removed.

Figures are gathered when asked, never on the System page's two-second health refresh: counting
rows and walking folders costs the stores real work."""

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, text
from sqlmodel import SQLModel

from app.ask.tables import Message
from app.audit.tables import AuditEntry
from app.batch.tables import BatchChunk
from app.core import coalesce, ratelimit
from app.core.clients import get_async_redis, get_chroma
from app.core.db import get_engine, session_scope
from app.core.roles import Actor, Role, require_role
from app.core.settings import get_settings
from app.core.storage import KEY_AREAS, get_storage
from app.core.time import utcnow
from app.knowledge.tables import Chunk, Document, KnowledgeBase
from app.monitoring.rollup_tables import PredictionRollup
from app.predict.tables import PredictionLog
from app.system.retention import RetentionRun, last_runs
from app.system.service import one_line
from app.system.temp_files import local_scratch_dirs
from app.usage.tables import UsageEvent
from app.webhooks.tables import WebhookAttempt
from jobs.tables import Job

# Each store gets this long to answer; a slow one is reported as such, the others still shown.
STORE_TIMEOUT_SECONDS = 20.0
# The tables that grow with use, largest first in a typical install.
GROWING_TABLES: tuple[type[SQLModel], ...] = (
    PredictionLog,
    UsageEvent,
    AuditEntry,
    Chunk,
    Job,
    PredictionRollup,
    Message,
    Document,
    BatchChunk,
    WebhookAttempt,
)
# The files section lists the file store's areas (KEY_AREAS) and this machine's scratch as "temp".
TEMP = "temp"


@dataclass
class StoredItem:
    """One thing a store holds: a table's rows, a collection's vectors, a folder's files."""

    name: str
    count: int
    unit: str
    size_bytes: int | None = None


@dataclass
class StoreUsage:
    name: str
    ok: bool
    size_bytes: int | None = None
    details: dict[str, str] = field(default_factory=dict)
    items: list[StoredItem] = field(default_factory=list)
    error: str = ""


@dataclass
class StorageReport:
    checked_at: datetime
    stores: list[StoreUsage]
    # What each retention job keeps, as its setting says, and its last run.
    retention_policy: dict[str, str]
    retention_runs: list[RetentionRun]
    retention_error: str = ""


# ------------------------------------------------------------------ database


def _sqlite_size(url_database: str) -> int:
    path = Path(url_database)
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def _database() -> StoreUsage:
    engine = get_engine()
    with session_scope() as db_session:
        if engine.dialect.name == "sqlite":
            size = _sqlite_size(engine.url.database or "")
        else:
            size = int(db_session.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        items = [
            StoredItem(
                table.__tablename__,
                int(db_session.execute(select(func.count()).select_from(table)).scalar_one()),
                "rows",
            )
            for table in GROWING_TABLES
        ]
    items.sort(key=lambda item: -item.count)
    return StoreUsage("database", True, size, {"backend": engine.dialect.name}, items)


# ------------------------------------------------------------------ redis


async def _redis() -> StoreUsage:
    redis = get_async_redis()
    try:
        memory = await redis.info("memory")
        keys = await redis.dbsize()
    finally:
        await redis.aclose()
    details = {"used memory": str(memory.get("used_memory_human")), "peak": str(memory.get("used_memory_peak_human"))}
    return StoreUsage("redis", True, int(memory["used_memory"]), details, [StoredItem("keys", int(keys), "keys")])


# ------------------------------------------------------------------ chroma


def _chroma() -> StoreUsage:
    client = get_chroma()
    with session_scope() as db_session:
        names = dict(db_session.execute(select(KnowledgeBase.collection, KnowledgeBase.name)).all())
    items = []
    for collection in client.list_collections():
        owner = names.get(collection.name)
        label = f"{collection.name} ({owner})" if owner else collection.name
        items.append(StoredItem(label, collection.count(), "vectors"))
    items.sort(key=lambda item: -item.count)
    total = sum(item.count for item in items)
    return StoreUsage("chroma", True, None, {"collections": str(len(items)), "vectors": str(total)}, items)


# ------------------------------------------------------------------ files


def _local_temp_files() -> tuple[int, int]:
    """This machine's scratch (app/system/temp_files.py): uploads being received, batch work."""
    count = size = 0
    for root in local_scratch_dirs(get_settings()):
        for directory, _subdirs, files in os.walk(root):
            for name in files:
                try:
                    size += (Path(directory) / name).lstat().st_size
                except FileNotFoundError:
                    continue  # moved into place or discarded while we walked
                count += 1
    return count, size


def _files() -> StoreUsage:
    """Every area of the file store (app/core/storage.py: a files root or an S3 bucket), counted
    through its listing, and this machine's scratch as "temp"."""
    storage = get_storage()
    items = []
    for area in KEY_AREAS:
        sizes = [size for _key, size in storage.iter_keys(area)]
        items.append(StoredItem(area, len(sizes), "files", sum(sizes)))
    temp_count, temp_size = _local_temp_files()
    items.append(StoredItem(TEMP, temp_count, "files", temp_size))
    settings = get_settings()
    where = settings.storage_url or str(settings.resolved_files_dir)
    return StoreUsage("files", True, sum(item.size_bytes or 0 for item in items), {"stored in": where}, items)


# ------------------------------------------------------------------ the report


# Each store's last figures in this process, with when they were gathered: shown when counting
# again outlasts the timeout (a bucket of a million keys lists for minutes).
_last_figures: dict[str, tuple[datetime, StoreUsage]] = {}


async def _gather(name: str, figures: Callable[[], Awaitable[StoreUsage]]) -> StoreUsage:
    """A store's figures, or why not. One gathering per store at a time: one that outlasts the
    timeout goes on in its thread (a thread cannot be stopped), and a report asked meanwhile
    joins it instead of starting another in the threads every database call waits for."""

    async def gathered() -> StoreUsage:
        usage = await figures()
        _last_figures[name] = (utcnow(), usage)
        return usage

    try:
        return await asyncio.wait_for(coalesce.shared(("store figures", name), gathered), timeout=STORE_TIMEOUT_SECONDS)
    except TimeoutError:
        if name in _last_figures:
            at, usage = _last_figures[name]
            late = f"{at:%Y-%m-%d %H:%M} UTC (counting again takes longer than {STORE_TIMEOUT_SECONDS:.0f} s)"
            return replace(usage, details={**usage.details, "figures from": late})
        return StoreUsage(name, False, error=f"No answer within {STORE_TIMEOUT_SECONDS:.0f} s")
    except Exception as exc:  # noqa: BLE001 - one store down must not hide the others' figures
        return StoreUsage(name, False, error=one_line(exc))


def _policy() -> dict[str, str]:
    settings = get_settings()

    def keep(amount: float, unit: str) -> str:
        return f"{amount:g} {unit}" if amount > 0 else "forever"

    return {
        "finished job rows": keep(settings.job_retention_days, "days"),
        "prediction log rows": keep(settings.prediction_log_retention_days, "days"),
        "temporary files": keep(settings.temp_file_retention_hours, "hours"),
        "usage events": keep(settings.usage_retention_days, "days"),
        "audit entries": keep(settings.audit_retention_days, "days"),
    }


async def _report() -> StorageReport:
    stores = list(
        await asyncio.gather(
            _gather("database", lambda: asyncio.to_thread(_database)),
            _gather("redis", _redis),
            _gather("chroma", lambda: asyncio.to_thread(_chroma)),
            _gather("files", lambda: asyncio.to_thread(_files)),
        )
    )
    try:
        runs, runs_error = await last_runs(), ""
    except Exception as exc:  # noqa: BLE001 - kept in Redis: down, the stores' figures still show
        runs, runs_error = [], one_line(exc)
    return StorageReport(utcnow(), stores, _policy(), runs, runs_error)


async def storage_report(*, actor: Actor) -> StorageReport:
    """Every store's figures (admins): what it holds and how big it is. Counting rows and
    walking folders costs the stores real work: each call counts against the caller's rate
    limit, and callers arriving while a report is gathered share it."""
    require_role(actor, Role.admin)
    await ratelimit.take_caller_token(actor.id)
    return await coalesce.shared("storage report", _report)
