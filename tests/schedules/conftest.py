"""Schedules fixtures: a small labelled dataset uploaded through the datasets service, the
built-in zero-shot classifier in the registry (what a scheduled batch job scores with), and
helpers to create schedules and read what they did."""

import io
import shutil

import pytest

import app.job_kinds  # noqa: F401 - registers the job kinds, as the web and the worker do
from app.core.db import session_scope
from app.schedules import service
from app.schedules.tables import Schedule
from jobs.tables import Job
from models.classifier import CLASSIFIER_NAME

DATASET = "reviews"
LABELS = ("good", "bad")


def reviews_csv(rows: int = 40, *, extra: str = "") -> bytes:
    lines = ["text,label"] + [
        f"review number {number}{extra}: the product was {'great' if number % 2 else 'awful'},{LABELS[number % 2]}"
        for number in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


class PickedFile:
    """An uploaded file as the datasets service receives it (name and bytes to read)."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self._data = io.BytesIO(data)

    async def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


async def upload_version(actor, settings, data: bytes, name: str = DATASET) -> int:
    """Stores `data` as the next version of the dataset; its number."""
    from app.datasets import service as datasets_service

    uploaded = await datasets_service.upload_dataset(
        actor=actor, settings=settings, name=name, upload=PickedFile(f"{name}.csv", data)
    )
    return uploaded.version.number


@pytest.fixture(autouse=True)
def _no_dataset_files(settings):
    shutil.rmtree(settings.resolved_data_dir / "datasets", ignore_errors=True)


@pytest.fixture
async def reviews(staff, settings, redis_url) -> str:
    """Version 1 of the dataset "reviews": 40 texts labelled good or bad."""
    await upload_version(staff, settings, reviews_csv())
    return DATASET


@pytest.fixture
def classifier(db, settings) -> str:
    """The built-in zero-shot classifier, in production in the registry."""
    from app.auth.service import SYSTEM
    from app.predict.registry import ensure_builtin_models

    with session_scope() as db_session:
        added = ensure_builtin_models(db_session=db_session, actor=SYSTEM, settings=settings)
    assert CLASSIFIER_NAME in added, "run `make test-models`: the classifier calibration is missing"
    return CLASSIFIER_NAME


def batch_params(model: str = CLASSIFIER_NAME, **changes) -> dict:
    return {"dataset": DATASET, "text_column": "text", "model": model, **changes}


def training_params(**changes) -> dict:
    return {"dataset": DATASET, "text_column": "text", "label_column": "label", "model_name": "review-mood", **changes}


def create(actor, *, name: str = "nightly", action: str = "batch", cron: str = "0 3 * * *", params=None, now=None):
    with session_scope() as db_session:
        return service.create_schedule(
            db_session=db_session,
            actor=actor,
            name=name,
            action=action,
            cron_expression=cron,
            params=params if params is not None else batch_params(),
            now=now,
        ).schedule


def reread(schedule_id: int) -> Schedule:
    with session_scope() as db_session:
        return db_session.get(Schedule, schedule_id)


def jobs_of_kind(kind: str) -> list[Job]:
    from sqlmodel import select

    with session_scope() as db_session:
        return list(db_session.exec(select(Job).where(Job.kind == kind)).all())
