"""The model registry: built-ins at install, label-set versions, canary, promote, roll back, who did what."""

import pytest
from sqlmodel import select

from app.auth.service import SYSTEM
from app.core.db import session_scope
from app.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.predict import registry
from app.predict.artifacts import artifact_path
from app.predict.schemas import LabelSpec
from app.predict.tables import ModelVersion
from models.classifier import CLASSIFIER_NAME, DEFAULT_LABELS
from models.manifest import EMBEDDER_NAME, read_manifest, sha256_file

pytestmark = pytest.mark.usefixtures("builtin_models")

SENTIMENT = [
    LabelSpec(name="positive", description="happy, pleased, praising, good news"),
    LabelSpec(name="negative", description="angry, disappointed, complaining, bad news"),
]


def versions(actor, model_name: str = CLASSIFIER_NAME):
    with session_scope() as db_session:
        return registry.list_versions(db_session=db_session, actor=actor, model_name=model_name)


def new_version(actor, labels=SENTIMENT) -> int:
    with session_scope() as db_session:
        return registry.create_classifier_version(
            db_session=db_session, actor=actor, model_name=CLASSIFIER_NAME, labels=labels
        ).number


def test_install_registers_the_embedder_and_a_calibrated_classifier_once(settings, viewer):
    with session_scope() as db_session:
        models = {m.name: m for m in registry.list_models(db_session=db_session, actor=viewer)}
        assert registry.ensure_builtin_models(db_session=db_session, actor=SYSTEM, settings=settings) == []
        with pytest.raises(Forbidden):
            registry.ensure_builtin_models(db_session=db_session, actor=viewer, settings=settings)
    assert models[EMBEDDER_NAME].kind == "embedder" and models[EMBEDDER_NAME].production_version == 1
    assert models[CLASSIFIER_NAME].kind == "classifier" and models[CLASSIFIER_NAME].production_version == 1

    (embedder,) = versions(viewer, EMBEDDER_NAME)
    manifest = read_manifest(settings.resolved_models_dir / EMBEDDER_NAME)
    assert (embedder.sha256, embedder.size_bytes, embedder.source) == (manifest.sha256, manifest.size_bytes, "built-in")

    (classifier,) = versions(viewer)
    assert [label.name for label in classifier.labels] == [name for name, _ in DEFAULT_LABELS]
    assert classifier.source == "built-in" and classifier.created_by == "system"
    assert classifier.stage == "production" and classifier.traffic_percent == 100
    # Measured on held-out BBC News articles; calibration must beat the raw cosine softmax.
    assert classifier.metrics["accuracy"] > 0.7
    assert classifier.metrics["ece"] < classifier.metrics["ece_uncalibrated"]
    with session_scope() as db_session:
        artifact = db_session.get(ModelVersion, classifier.id).artifact
    path = artifact_path(artifact)
    assert sha256_file(path) == classifier.sha256 and path.stat().st_size == classifier.size_bytes


def test_a_new_label_set_is_a_staging_version_recorded_with_its_author(staff):
    number = new_version(staff)
    newest = versions(staff)[0]
    assert (newest.number, newest.stage, newest.source, newest.created_by) == (
        number,
        "staging",
        "imported",
        staff.email,
    )
    assert [label.name for label in newest.labels] == ["positive", "negative"]
    assert newest.traffic_percent == 0
    with session_scope() as db_session:
        (event, *_) = registry.registry_events(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)
    assert (event.user, event.action, event.version) == (staff.email, "create_version", number)


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ([LabelSpec(name="only", description="one label")], "2 to 50 labels"),
        ([LabelSpec(name="a", description=""), LabelSpec(name="A", description="")], "differ"),
        ([LabelSpec(name=" ", description="x"), LabelSpec(name="b", description="")], "needs a name"),
    ],
)
def test_bad_label_sets_are_refused_and_add_nothing(staff, labels, problem):
    with pytest.raises(InvalidInput, match=problem):
        new_version(staff, labels)
    assert len(versions(staff)) == 1


def test_canary_share_shows_as_traffic_and_only_a_staging_version_can_be_canary(staff):
    number = new_version(staff)
    with session_scope() as db_session:
        registry.set_canary(
            db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number, percent=25
        )
    traffic = {v.number: v.traffic_percent for v in versions(staff)}
    assert traffic == {number: 25, 1: 75}
    with session_scope() as db_session:
        summary = {m.name: m for m in registry.list_models(db_session=db_session, actor=staff)}[CLASSIFIER_NAME]
        assert (summary.canary_version, summary.canary_percent) == (number, 25)
        with pytest.raises(Conflict, match="only a staging version"):
            registry.set_canary(
                db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=1, percent=5
            )
        with pytest.raises(InvalidInput, match="0 to 100"):
            registry.set_canary(
                db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number, percent=101
            )


def test_promote_then_roll_back_restores_the_previous_production_version(staff):
    second = new_version(staff)
    third = new_version(staff)
    for number in (second, third):
        with session_scope() as db_session:
            registry.promote(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number)
    assert {v.number: v.stage for v in versions(staff)} == {third: "production", second: "archived", 1: "archived"}

    with session_scope() as db_session:
        registry.rollback(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)
    assert {v.number: v.stage for v in versions(staff)} == {third: "archived", second: "production", 1: "archived"}
    with session_scope() as db_session:
        registry.rollback(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)
    assert {v.number: v.stage for v in versions(staff)} == {third: "archived", second: "archived", 1: "production"}
    with session_scope() as db_session, pytest.raises(Conflict, match="no previous production"):
        registry.rollback(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)

    with session_scope() as db_session:
        events = registry.registry_events(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME)
        productions = db_session.exec(select(ModelVersion).where(ModelVersion.stage == "production")).all()
    assert [(e.action, e.version) for e in events[:4]] == [
        ("rollback", 1),
        ("rollback", second),
        ("promote", third),
        ("promote", second),
    ]
    assert all(e.user == staff.email for e in events[:4])
    assert len(productions) == 2  # one per model: the embedder's and the classifier's


def test_promoting_ends_the_canary(staff):
    number = new_version(staff)
    with session_scope() as db_session:
        registry.set_canary(
            db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number, percent=50
        )
    with session_scope() as db_session:
        registry.promote(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=number)
    with session_scope() as db_session:
        summary = {m.name: m for m in registry.list_models(db_session=db_session, actor=staff)}[CLASSIFIER_NAME]
    assert (summary.production_version, summary.canary_version, summary.canary_percent) == (number, None, 0)


def test_a_viewer_cannot_change_the_registry(staff, viewer):
    number = new_version(staff)
    changes = [
        lambda s: registry.create_classifier_version(
            db_session=s, actor=viewer, model_name=CLASSIFIER_NAME, labels=SENTIMENT
        ),
        lambda s: registry.set_canary(
            db_session=s, actor=viewer, model_name=CLASSIFIER_NAME, version_number=number, percent=10
        ),
        lambda s: registry.promote(db_session=s, actor=viewer, model_name=CLASSIFIER_NAME, version_number=number),
        lambda s: registry.rollback(db_session=s, actor=viewer, model_name=CLASSIFIER_NAME),
    ]
    before = versions(staff)
    for change in changes:
        with session_scope() as db_session, pytest.raises(Forbidden):
            change(db_session)
    assert versions(staff) == before


def test_unknown_model_or_version_is_not_found(staff):
    with session_scope() as db_session:
        with pytest.raises(NotFound):
            registry.list_versions(db_session=db_session, actor=staff, model_name="nope")
        with pytest.raises(NotFound):
            registry.promote(db_session=db_session, actor=staff, model_name=CLASSIFIER_NAME, version_number=99)
        with pytest.raises(InvalidInput, match="embedder"):
            registry.create_classifier_version(
                db_session=db_session, actor=staff, model_name=EMBEDDER_NAME, labels=SENTIMENT
            )
