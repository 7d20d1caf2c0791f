"""Backup and restore: how long they take, and what users feel while a backup runs.

    python benchmarks/backup.py [--rows 200000] [--vectors 20000] [--file-mb 50] [--database-url URL]

Fills a throwaway Strata (SQLite in a temporary data dir, or the empty PostgreSQL database
given) with usage-event rows, one knowledge base's vectors (384 floats each) in a Chroma
server started here, and stored files of random bytes. Then, for the same writer (one thread
committing one usage event at a time, as the web does for every request), measures the commit
latency alone and while `strata backup`'s create_backup runs, and prints p50/p99 and their
ratio: a backup that held a lock writers wait for would show here. Last, the backup's and a
restore's duration and throughput. Built models are left out (STRATA_BACKUP_INCLUDE_MODELS
adds ~200 MB of copying). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ROOT = Path(tempfile.mkdtemp(prefix="strata-bench-backup-"))
os.environ.update(STRATA_DATA_DIR=str(ROOT / "data"), STRATA_LOG_LEVEL="WARNING", ANONYMIZED_TELEMETRY="False")

from sqlalchemy import insert  # noqa: E402

from app.backup import backup_and_restore as backup  # noqa: E402
from app.core import migrations  # noqa: E402
from app.core.clients import get_chroma  # noqa: E402
from app.core.db import session_scope  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.core.storage import get_storage  # noqa: E402
from app.core.time import utcnow  # noqa: E402
from app.knowledge.tables import KnowledgeBase  # noqa: E402
from app.tables import metadata  # noqa: F401, E402 - every table, for the foreign keys
from app.usage.tables import UsageEvent  # noqa: E402
from benchmarks.retrieval import start_chroma  # noqa: E402

COLLECTION = "strata-kb-benchmark"


def usage_rows(count: int, start: int = 0) -> list[dict]:
    now = utcnow()
    return [
        {
            "at": now - timedelta(seconds=i),
            "user_id": i % 50,
            "user_email": f"user{i % 50}@example.com",
            "channel": "api",
            "endpoint": "predict",
            "model": "zero-shot-classifier",
            "status_code": 200,
            "latency_ms": 3.5,
        }
        for i in range(start, start + count)
    ]


def fill(rows: int, vectors: int, file_mb: int) -> None:
    with session_scope() as db_session:
        db_session.add(KnowledgeBase(name="Benchmark", collection=COLLECTION))
    for start in range(0, rows, 10_000):
        with session_scope() as db_session:
            db_session.execute(insert(UsageEvent), usage_rows(min(10_000, rows - start), start))
    collection = get_chroma().get_or_create_collection(COLLECTION, embedding_function=None)
    rng = random.Random(0)
    for start in range(0, vectors, 1000):
        ids = [f"chunk-{i}" for i in range(start, min(vectors, start + 1000))]
        collection.add(
            ids=ids,
            embeddings=[[rng.uniform(-1, 1) for _ in range(384)] for _ in ids],
            metadatas=[{"document_id": i % 100} for i in range(len(ids))],
        )
    storage = get_storage()
    for index in range(file_mb):
        path = ROOT / "blob"
        path.write_bytes(os.urandom(1 << 20))
        storage.save(f"knowledge/1/file-{index}.bin", path)


class Writer(threading.Thread):
    """Commits one usage event at a time and records each commit's latency."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.latencies: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            with session_scope() as db_session:
                db_session.execute(insert(UsageEvent), usage_rows(1))
            self.latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def writes_during(seconds: float | None, work=None) -> tuple[list[float], float]:
    writer = Writer()
    writer.start()
    started = time.perf_counter()
    if work is None:
        time.sleep(seconds)
    else:
        work()
    elapsed = time.perf_counter() - started
    writer.stop.set()
    writer.join()
    return writer.latencies, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--file-mb", type=int, default=50)
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database (default: SQLite)")
    args = parser.parse_args()
    if args.database_url:
        os.environ["STRATA_DATABASE_URL"] = args.database_url
    chroma, url = start_chroma(ROOT / "chroma")
    os.environ["STRATA_CHROMA_URL"] = url
    get_settings.cache_clear()
    try:
        settings = get_settings().model_copy(update={"backup_include_models": False})
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        migrations.upgrade(settings.effective_database_url)
        started = time.perf_counter()
        fill(args.rows, args.vectors, args.file_mb)
        print(
            f"filled: {args.rows} rows, {args.vectors} vectors, {args.file_mb} MB of files "
            f"in {time.perf_counter() - started:.1f} s ({settings.effective_database_url.split(':')[0]})"
        )

        archive = ROOT / "backup.tar.gz"
        during, backup_seconds = writes_during(None, lambda: backup.create_backup(archive, settings=settings))
        alone, _ = writes_during(min(backup_seconds, 20.0))
        for label, values in (("alone", alone), ("during backup", during)):
            p50, p99 = percentiles(values)
            print(f"writer commit latency {label:>14}: p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  ({len(values)} commits)")
        ratio50 = percentiles(during)[0] / percentiles(alone)[0]
        ratio99 = percentiles(during)[1] / percentiles(alone)[1]
        print(f"during/alone: p50 x{ratio50:.2f}, p99 x{ratio99:.2f}  (load average {os.getloadavg()[0]:.2f})")
        size = archive.stat().st_size
        print(f"backup: {backup_seconds:.1f} s, {size / 1e6:.1f} MB, {args.rows / backup_seconds:,.0f} rows/s overall")

        target = settings.model_copy(update={"data_dir": ROOT / "restored", "database_url": ""})
        for name in [COLLECTION]:
            get_chroma().delete_collection(name)
        started = time.perf_counter()
        summary = backup.restore_backup(archive, settings=target)
        restore_seconds = time.perf_counter() - started
        print(
            f"restore into a fresh SQLite data dir: {restore_seconds:.1f} s "
            f"({summary.rows} rows, {summary.files} files, {sum(summary.vectors.values())} vectors)"
        )
    finally:
        chroma.terminate()
        chroma.wait(10)


if __name__ == "__main__":
    main()
