"""A trained version's drift reference is its training run's holdout: a classifier trained in
Strata on Rotten Tomatoes snippets (TF-IDF, through the training run's own steps: the sandboxed
read, models.training.train, the registration), promoted, then asked about other snippets. Its
first drift computation builds the reference from the holdout, later ones reuse it; no window
needs to be set, and the same kind of snippets shows no label-mix drift."""

import random
import uuid

import pytest
from sqlalchemy import func, select

from app.core.db import session_scope
from app.datasets.tables import Dataset, DatasetVersion
from app.monitoring.tables import DriftReference
from app.predict import registry
from app.training import running
from app.training.tables import TrainingRun
from jobs.tables import Job
from models.corpora import rotten_tomatoes
from models.training import train
from tests.conftest import sign_in
from tests.monitoring.test_drift import predict_window
from tests.training.conftest import as_csv, upload

pytestmark = pytest.mark.usefixtures("builtin_models")

TRAINING_ROWS = 500  # holdout: 100 rows
MODEL = "reviews"


@pytest.fixture
def small_windows(settings, monkeypatch):
    monkeypatch.setattr(settings, "prediction_log_sample_rate", 1.0)
    monkeypatch.setattr(settings, "drift_min_samples", 80)


def train_and_promote(staff, dataset_version_id: int) -> None:
    """The training run's steps in-process (its job is the worker's business, tested elsewhere)."""
    with session_scope() as db_session:
        job = Job(id=uuid.uuid4().hex, kind="training.run", status="running", created_by=staff.id)
        db_session.add(job)
        db_session.flush()
        run = TrainingRun(
            job_id=job.id,
            dataset_version_id=dataset_version_id,
            text_column="text",
            label_column="topic",
            model_name=MODEL,
            holdout_fraction=0.2,
            seed=3,
            created_by=staff.id,
        )
        db_session.add(run)
        db_session.flush()
        plan = running.plan_run(db_session=db_session, run_id=run.id)
    rows = running.read_rows(plan, on_progress=lambda *_: None)
    result = train(rows.texts, rows.labels, holdout_fraction=0.2, seed=3, embedder=None, folds=3)
    with session_scope() as db_session:
        number = running.record_success(db_session=db_session, plan=plan, result=result, rows=rows, seconds=1.0)
    with session_scope() as db_session:
        registry.promote(db_session=db_session, actor=staff, model_name=MODEL, version_number=number["model_version"])


@pytest.mark.usefixtures("small_windows")
async def test_a_trained_version_is_compared_with_its_holdout_without_a_window(client, staff):
    headers = await sign_in(client, staff.email)
    texts, labels = rotten_tomatoes()
    order = list(range(len(texts)))
    random.Random(5).shuffle(order)
    training = [(texts[i], labels[i]) for i in order[:TRAINING_ROWS]]
    await upload(client, headers, "reviews", as_csv(training))
    with session_scope() as db_session:
        dataset_version_id = db_session.execute(
            select(DatasetVersion.id).join(Dataset).where(Dataset.name == "reviews")
        ).scalar_one()
    train_and_promote(staff, dataset_version_id)

    await predict_window(client, headers, [texts[i] for i in order[TRAINING_ROWS : TRAINING_ROWS + 100]], model=MODEL)
    first = await client.post(f"/api/v1/models/{MODEL}/drift", headers=headers, json={})
    assert first.status_code == 200, first.text
    first = first.json()
    assert first["reference"].startswith("training data: reviews version 1, column 'text', 100 holdout rows")
    assert (first["reference_rows"], first["current_rows"]) == (100, 100)
    assert set(first["details"]["reference_labels"]) == {"fresh", "rotten"}
    assert first["scores"]["label_psi"] < first["thresholds"]["label_psi"]
    assert "label_psi" not in first["crossed"] and "label_js" not in first["crossed"]

    second = (await client.post(f"/api/v1/models/{MODEL}/drift", headers=headers, json={})).json()
    assert second["scores"] == first["scores"]
    with session_scope() as db_session:
        assert db_session.execute(select(func.count()).select_from(DriftReference)).scalar_one() == 1
