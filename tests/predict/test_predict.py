"""Predictions: answers, routing by canary weight (sticky per caller), cache, batching, the log."""

import asyncio

import pytest
from prometheus_client import REGISTRY
from sqlmodel import select

from app.core.db import session_scope
from app.core.errors import InvalidInput, NotFound, TooManyAttempts
from app.predict import registry, service
from app.predict.schemas import LabelSpec
from app.predict.serving import LoadedVersions, VersionRef
from app.predict.tables import ModelVersion, PredictionLog
from models.classifier import CLASSIFIER_NAME
from models.manifest import EMBEDDER_NAME

pytestmark = pytest.mark.usefixtures("builtin_models")

ANIMALS = [
    LabelSpec(name="cats", description="cats, kittens, felines that purr and meow"),
    LabelSpec(name="dogs", description="dogs, puppies, canines that bark and fetch"),
]


def canary(staff, percent: int) -> int:
    with session_scope() as db_session:
        number = registry.create_classifier_version(
            db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, labels=ANIMALS
        ).number
    with session_scope() as db_session:
        registry.set_canary(
            db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number, percent=percent
        )
    return number


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_builtin_classifier_names_the_topic_with_probabilities(viewer):
    response = await service.predict(
        actor=viewer,
        model_name=CLASSIFIER_NAME,
        inputs=[
            "Shares fell sharply after the bank reported lower quarterly profits and weak sales.",
            "The striker scored twice as the club won the cup final in extra time.",
            "The new smartphone has a faster chip and the software update fixes security bugs.",
        ],
        caller="user:1",
    )
    assert response.model == CLASSIFIER_NAME and response.version == 1
    assert [r.label for r in response.results] == ["business", "sport", "tech"]
    for result in response.results:
        assert abs(sum(s.probability for s in result.scores) - 1) < 1e-5
        assert result.confidence == result.scores[0].probability == max(s.probability for s in result.scores)


async def test_the_embedder_answers_with_normalised_vectors(viewer):
    response = await service.predict(actor=viewer, model_name=EMBEDDER_NAME, inputs=["hello world"], caller="user:1")
    (result,) = response.results
    assert result.label is None and len(result.embedding) == 384
    assert abs(sum(x * x for x in result.embedding) - 1) < 1e-4


async def test_canary_takes_its_share_of_callers_within_tolerance(viewer, staff):
    number = canary(staff, 30)
    answered = [
        (
            await service.predict(
                actor=viewer, model_name=CLASSIFIER_NAME, inputs=["a kitten purrs"], caller=f"user:{i}"
            )
        ).version
        for i in range(600)
    ]
    share = answered.count(number) / len(answered)
    assert 0.25 <= share <= 0.35, share
    assert set(answered) == {1, number}


async def test_a_caller_keeps_its_version_while_weights_stay_and_raising_the_share_keeps_canary_callers(viewer, staff):
    number = canary(staff, 50)
    first = {}
    for i in range(40):
        caller = f"key:{i}"
        seen = {
            (
                await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=[f"text {j}"], caller=caller)
            ).version
            for j in range(5)
        }
        assert len(seen) == 1, caller
        first[caller] = seen.pop()
    with session_scope() as db_session:
        registry.set_canary(
            db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number, percent=80
        )
    for caller, version in first.items():
        if version == number:
            response = await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=["again"], caller=caller)
            assert response.version == number


async def test_promote_then_roll_back_changes_who_answers(viewer, staff):
    number = canary(staff, 0)
    with session_scope() as db_session:
        registry.promote(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number)
    promoted = await service.predict(
        actor=viewer, model_name=CLASSIFIER_NAME, inputs=["a puppy barks"], caller="user:7"
    )
    assert (promoted.version, promoted.results[0].label) == (number, "dogs")
    with session_scope() as db_session:
        registry.rollback(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)
    restored = await service.predict(
        actor=viewer, model_name=CLASSIFIER_NAME, inputs=["a puppy barks"], caller="user:7"
    )
    assert restored.version == 1 and restored.results[0].label in {
        "business",
        "entertainment",
        "politics",
        "sport",
        "tech",
    }


async def test_a_pinned_version_answers_whatever_the_routing(viewer, staff):
    number = canary(staff, 0)
    response = await service.predict(
        actor=viewer, model_name=CLASSIFIER_NAME, inputs=["a kitten"], caller="user:1", version_number=number
    )
    assert response.version == number and response.results[0].label == "cats"
    with pytest.raises(NotFound):
        await service.predict(
            actor=viewer, model_name=CLASSIFIER_NAME, inputs=["x"], caller="user:1", version_number=42
        )
    with pytest.raises(NotFound):
        await service.predict(actor=viewer, model_name="no-such-model", inputs=["x"], caller="user:1")


async def test_the_same_input_is_answered_from_the_cache_and_counted(viewer):
    hits, misses = (
        metric("strata_prediction_cache_total", result="hit"),
        metric("strata_prediction_cache_total", result="miss"),
    )
    texts = ["Parliament passed the budget after a long debate.", "The band's new album tops the charts."]
    first = await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=texts, caller="user:1")
    second = await service.predict(
        actor=viewer, model_name=CLASSIFIER_NAME, inputs=[texts[1], texts[0], "A fresh one."], caller="user:2"
    )
    assert (first.cached, second.cached) == (0, 2)
    assert second.results[0].label == first.results[1].label
    assert second.results[0].scores == first.results[1].scores
    assert metric("strata_prediction_cache_total", result="hit") - hits == 2
    assert metric("strata_prediction_cache_total", result="miss") - misses == 3
    with session_scope() as db_session:
        (version,) = registry.list_versions(db_session=db_session, actor=viewer, model_name=CLASSIFIER_NAME)
    assert version.served == 5


async def test_predictions_still_work_uncached_while_redis_is_down(viewer, valkey_server):
    text = "The minister resigned after the election defeat."
    await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=[text], caller="user:1")
    valkey_server.stop()
    try:
        down = await service.predict(
            actor=viewer, model_name=CLASSIFIER_NAME, inputs=[text, "Another one."], caller="user:1"
        )
        assert down.cached == 0 and down.results[0].label == "politics"
        with session_scope() as db_session:
            assert (
                registry.list_versions(db_session=db_session, actor=viewer, model_name=CLASSIFIER_NAME)[0].served >= 0
            )
    finally:
        valkey_server.start()


async def test_concurrent_requests_are_batched_and_each_gets_its_own_answers(viewer):
    batches_before = metric("strata_serving_batch_size_count")
    inputs_before = metric("strata_serving_batch_size_sum")
    texts = [
        f"Story number {i} about {topic}." for i, topic in enumerate(["football", "elections", "banks", "films"] * 8)
    ]
    alone = [
        (
            await service.predict(
                actor=viewer, model_name=CLASSIFIER_NAME, inputs=[text], caller="user:1", version_number=1
            )
        ).results[0]
        for text in texts[:4]
    ]
    together = await asyncio.gather(
        *(
            service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=[text], caller=f"user:{i}")
            for i, text in enumerate(texts)
        )
    )
    for single, batched in zip(alone, together[:4], strict=True):
        assert batched.results[0].label == single.label
        assert batched.results[0].confidence == pytest.approx(single.confidence, abs=1e-4)
    calls = metric("strata_serving_batch_size_count") - batches_before
    inputs = metric("strata_serving_batch_size_sum") - inputs_before
    # 4 lone calls, then 28 new texts (4 came from the cache) in far fewer calls than requests.
    assert inputs == 4 + 28
    assert calls - 4 < 28 / 2


async def test_answers_of_concurrent_requests_are_all_cached_and_counted(viewer):
    texts = [f"Headline {i}: the {topic} story of the day." for i, topic in enumerate(["sport", "tech", "money"] * 6)]
    await asyncio.gather(
        *(
            service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=[text], caller=f"user:{i}")
            for i, text in enumerate(texts)
        )
    )
    again = await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=texts, caller="user:1")
    assert again.cached == len(texts)
    with session_scope() as db_session:
        (version,) = registry.list_versions(db_session=db_session, actor=viewer, model_name=CLASSIFIER_NAME)
    assert version.served == 2 * len(texts)


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ([], "at least one"),
        (["ok", "  "], "Input 1 is empty"),
        (["x"] * 65, "At most 64"),
        (["x" * 10_001], "characters"),
    ],
)
async def test_bad_inputs_are_refused_with_the_reason(viewer, inputs, problem):
    with pytest.raises(InvalidInput, match=problem):
        await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=inputs, caller="user:1")


async def test_every_prediction_is_logged_at_sample_rate_one(viewer, monkeypatch):
    from app.core.settings import get_settings

    monkeypatch.setattr(get_settings(), "prediction_log_sample_rate", 1.0)
    await service.predict(
        actor=viewer, model_name=CLASSIFIER_NAME, inputs=["Oil prices rose.", "Oil prices rose."], caller="key:3"
    )
    for _ in range(50):
        with session_scope() as db_session:
            rows = db_session.exec(select(PredictionLog)).all()
        if len(rows) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(rows) == 2
    assert all(r.caller == "key:3" and r.label == "business" and 0 < r.confidence <= 1 for r in rows)
    assert rows[0].input_sha256 == rows[1].input_sha256 and len(rows[0].input_sha256) == 64


def test_loaded_versions_are_bounded_least_recently_used_first(staff):
    with session_scope() as db_session:
        for labels in (ANIMALS, ANIMALS[::-1]):
            registry.create_classifier_version(
                db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, labels=labels
            )
        ids = [v.id for v in registry.list_versions(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)]
        refs = [
            VersionRef(v.id, CLASSIFIER_NAME, "classifier", v.artifact)
            for v in (db_session.get(ModelVersion, version_id) for version_id in ids)
        ]
    loaded = LoadedVersions(capacity=2)
    first, second, third = refs[:3]
    loaded.get(first)
    loaded.get(second)
    loaded.get(first)
    loaded.get(third)
    assert loaded.loaded_ids() == [first.id, third.id]


async def test_the_service_itself_takes_each_prediction_from_the_callers_rate_limit(viewer, monkeypatch):
    """So the Predict page, the API and the OpenAI-compatible embeddings all count the same way."""
    from app.core.settings import get_settings

    monkeypatch.setattr(get_settings(), "rate_limit_per_minute", 2)
    for _ in range(2):
        await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=["Rates rose again."])
    with pytest.raises(TooManyAttempts, match="2 requests a minute"):
        await service.predict(actor=viewer, model_name=CLASSIFIER_NAME, inputs=["Rates rose again."])
    # An API key of the same user counts on its own, at its own limit.
    for _ in range(3):
        await service.predict(
            actor=viewer, model_name=CLASSIFIER_NAME, inputs=["Rates rose."], caller="key:7", limit_per_minute=3
        )
    with pytest.raises(TooManyAttempts, match="3 requests a minute"):
        await service.predict(
            actor=viewer, model_name=CLASSIFIER_NAME, inputs=["Rates rose."], caller="key:7", limit_per_minute=3
        )
