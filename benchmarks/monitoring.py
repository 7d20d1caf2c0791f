"""The Monitoring page's queries over a large prediction log.

    python benchmarks/monitoring.py [--rows 1000000]

Fills a scratch SQLite database (and the PostgreSQL database at STRATA_BENCH_DATABASE_URL
when set: its tables are DROPPED and migrated again) with one model of two versions and
`--rows` logged predictions spread evenly over the last week (5 labels, a quarter cached,
0.5% errors, 4% with feedback, 80% of it agreeing), then times app.monitoring.service.figures, the one call the
Monitoring page and the API make, for each period (hour, day, week) over every version and
over one version, and prints the figures it returned: first from the log alone, then after
the hourly rollup job (app/monitoring/rollups.py) has rolled the log up, timed too. Target:
under 1 s per call. Prints numbers, asserts nothing.

Then one drift computation (app.monitoring.drift.compute_drift, as POST .../drift makes it): every
row carries an input sketch (length, out-of-vocabulary share, 16-number projection), the first
day of the week is the reference window, and version 1's last STRATA_DRIFT_WINDOW_HOURS (a day)
is compared with it. Target: under 10 s.
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlmodel import Session  # noqa: E402

from app.auth.service import SYSTEM  # noqa: E402
from app.core import migrations  # noqa: E402
from app.core.db import make_engine  # noqa: E402
from app.monitoring import drift, rollups, service  # noqa: E402
from app.predict.tables import ModelVersion, PredictionLog, RegisteredModel  # noqa: E402
from app.tables import metadata  # noqa: E402

MODEL = "bench-classifier"
SKETCH_BYTES = 32
LABELS = ["business", "entertainment", "politics", "sport", "tech"]
CHUNK = 50_000


def prepare(url: str) -> None:
    if not url.startswith("sqlite"):
        engine = make_engine(url)
        metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    migrations.upgrade(url)


def fill(url: str, rows: int) -> tuple[float, list[int]]:
    """Inserts the model, its versions and `rows` log rows; returns seconds taken and version ids."""
    engine = make_engine(url)
    started = time.perf_counter()
    with Session(engine) as db_session:
        model = RegisteredModel(name=MODEL, kind="classifier")
        db_session.add(model)
        db_session.flush()
        versions = [
            ModelVersion(
                model_id=model.id,
                number=number,
                artifact="-",
                sha256="0" * 64,
                size_bytes=0,
                source="imported",
                labels=[{"name": label, "description": label} for label in LABELS],
                created_by="benchmark",
            )
            for number in (1, 2)
        ]
        db_session.add_all(versions)
        db_session.commit()
        version_ids = [version.id for version in versions]
    now = datetime.now(UTC)
    step = timedelta(weeks=1) / rows
    # 4,096 distinct projections, float16 as stored.
    sketch_rows = np.random.default_rng(0).standard_normal((4096, SKETCH_BYTES // 2)).astype("<f2")
    sketches = [row.tobytes() for row in sketch_rows]
    with engine.begin() as connection:
        for chunk_start in range(0, rows, CHUNK):
            connection.execute(
                insert(PredictionLog.__table__),
                [
                    {
                        "at": now - step * i,
                        "version_id": version_ids[i % 2],
                        "caller": f"key:{i % 7}",
                        "latency_ms": 2.0 + (i * 7919) % 400 / 10,
                        "label": None if i % 200 == 0 else LABELS[(i // 3) % 5],
                        "confidence": None if i % 200 == 0 else (i * 31) % 100 / 100,
                        "input_sha256": "0" * 64,
                        "cached": i % 4 == 0,
                        "error": "RuntimeError" if i % 200 == 0 else None,
                        # Feedback on 4% of them, 80% agreeing with the prediction.
                        "feedback_label": None
                        if i % 25 != 1 or i % 200 == 0
                        else LABELS[(i // 3 + (0 if (i // 25) % 5 else 1)) % 5],
                        # An input sketch (models.sketch) on every served row.
                        "input_length": None if i % 200 == 0 else 40 + (i * 131) % 3000,
                        "input_oov_share": None if i % 200 == 0 else (i * 17) % 40 / 100,
                        "input_sketch": None if i % 200 == 0 else sketches[(i * 7) % len(sketches)],
                    }
                    for i in range(chunk_start, min(rows, chunk_start + CHUNK))
                ],
            )
    with engine.begin() as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started, version_ids


def number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def roll_up(url: str) -> float:
    """Runs the rollup job's work once over the whole log; returns seconds taken."""
    engine = make_engine(url)
    started = time.perf_counter()
    with Session(engine) as db_session:
        rollups.roll_up(db_session=db_session)
    engine.dispose()
    return time.perf_counter() - started


def time_page(url: str) -> None:
    engine = make_engine(url)
    print(
        f"{'period':<6} {'version':<7} {'seconds':>8} {'buckets':>7} {'predictions':>11} {'errors':>6} "
        f"{'cache':>6} {'p50 ms':>7} {'p95 ms':>7} {'accuracy (n)':>14}  label mix"
    )
    for version in (None, 1):
        for period in ("hour", "day", "week"):
            with Session(engine) as db_session:
                started = time.perf_counter()
                figures = service.figures(
                    db_session=db_session, actor=SYSTEM, model_name=MODEL, version_number=version, period=period
                )
                seconds = time.perf_counter() - started
            totals = figures.totals
            print(
                f"{period:<6} {version or 'all':<7} {seconds:>8.3f} {len(figures.buckets):>7} "
                f"{totals.predictions:>11} {totals.errors:>6} {number(totals.cache_hit_rate):>6} "
                f"{number(totals.latency_p50_ms):>7} {number(totals.latency_p95_ms):>7} "
                f"{number(totals.accuracy):>6} ({totals.feedback:>5})  {totals.labels}"
            )
    engine.dispose()


def time_drift(url: str) -> None:
    """One drift computation of version 1: its last day against the week's first day."""
    engine = make_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as db_session:
        drift.set_reference_window(
            db_session=db_session,
            actor=SYSTEM,
            model_name=MODEL,
            since=now - timedelta(weeks=1),
            until=now - timedelta(weeks=1) + timedelta(days=1),
        )
        db_session.commit()
    with Session(engine) as db_session:
        started = time.perf_counter()
        report = drift.compute_drift(db_session=db_session, actor=SYSTEM, model_name=MODEL, version_number=1)
        seconds = time.perf_counter() - started
        db_session.commit()
    engine.dispose()
    print(
        f"drift   1       {seconds:>8.3f}  reference {report.reference_rows} rows, current {report.current_rows} rows, "
        f"{report.status}: {report.scores}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strata-monitoring-bench-") as scratch:
        urls = [("SQLite", f"sqlite:///{scratch}/bench.db")]
        if os.environ.get("STRATA_BENCH_DATABASE_URL"):
            urls.append(("PostgreSQL", os.environ["STRATA_BENCH_DATABASE_URL"]))
        for name, url in urls:
            prepare(url)
            seconds, _ = fill(url, args.rows)
            print(f"\n{name}: {args.rows:,} logged predictions inserted in {seconds:.1f} s; from the log alone:")
            time_page(url)
            print(f"{name}: the first rollup of the whole log took {roll_up(url):.1f} s; with rollups:")
            time_page(url)
            time_drift(url)


if __name__ == "__main__":
    main()
