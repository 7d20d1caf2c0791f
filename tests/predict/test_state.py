"""The Predict and Models page handlers, called as the browser would call them: a viewer
reads the registry and predicts but cannot change the registry, even by sending the
events itself; staff change it through the same handlers."""

import pytest
import reflex as rx
from reflex.istate.data import HeaderData

import app.app  # noqa: F401 - builds every page and state
from app.auth import service as auth_service
from app.auth.cookies import SESSION_COOKIE
from app.auth.state import AuthState
from app.auth.tables import User
from app.core.db import session_scope
from app.core.settings import get_settings
from app.predict import registry
from app.predict.schemas import LabelSpec
from app.predict.state import ModelsState, PredictState
from models.classifier import CLASSIFIER_NAME
from models.manifest import EMBEDDER_NAME

STAFF_ONLY = "This needs the staff role; you are viewer."


@pytest.fixture
def staging_version(builtin_models, staff) -> None:
    """Version 2 of the classifier, in staging, made by the staff member."""
    with session_scope() as db_session:
        registry.create_classifier_version(
            db_session=db_session,
            actor=staff,
            model_name=CLASSIFIER_NAME,
            labels=[
                LabelSpec(name="finance", description="money and markets"),
                LabelSpec(name="games", description="sport"),
            ],
        )


def signed_in(state_class: type[AuthState], user: User) -> AuthState:
    """The state instance a browser tab of this user would have."""
    root = rx.State(_reflex_internal_init=True)
    state = root.get_substate(state_class.get_full_name().split(".")[1:])
    with session_scope() as db_session:
        token = auth_service.create_session(db_session=db_session, settings=get_settings(), user=user)
    # As Reflex fills it in from the websocket handshake, which carries the HttpOnly session cookie.
    state.rx_router_headers = HeaderData(cookie=f"{SESSION_COOKIE}={token}")
    return state


async def send(state, handler, *args):
    """An event from the browser: the same function Reflex runs for it."""
    return await handler.fn(state, *args)


def registry_snapshot(actor) -> tuple:
    with session_scope() as db_session:
        return (
            registry.list_models(db_session=db_session, actor=actor),
            [
                (v.number, v.stage, v.traffic_percent, [label.name for label in v.labels])
                for v in registry.list_versions(db_session=db_session, actor=actor, model_name=CLASSIFIER_NAME)
            ],
            registry.registry_events(db_session=db_session, actor=actor, model_name=CLASSIFIER_NAME),
        )


async def test_a_viewer_sees_the_registry_but_every_change_is_refused_and_nothing_changes(
    staging_version, staff, viewer
):
    viewer = signed_in(ModelsState, viewer)
    await send(viewer, ModelsState.load)
    assert viewer.model_name == CLASSIFIER_NAME
    assert [(v.number, v.stage, v.traffic_percent) for v in viewer.versions] == [
        (2, "staging", 0),
        (1, "production", 100),
    ]
    assert viewer.canary_target == 2

    before = registry_snapshot(staff)
    # What a forged client could send, the disabled controls notwithstanding.
    viewer.canary_draft = 50
    attempts = [
        (ModelsState.move_canary, [80]),
        (ModelsState.apply_canary,),
        (ModelsState.promote, 2),
        (ModelsState.rollback,),
        (ModelsState.create_version, {"labels": "alpha: one\nbeta: two"}),
    ]
    for handler, *args in attempts:
        refusal = await send(viewer, handler, *args)
        assert STAFF_ONLY in str(refusal), handler
    assert registry_snapshot(staff) == before
    assert viewer.canary_draft == 50
    assert [(v.number, v.stage, v.traffic_percent) for v in viewer.versions] == [
        (2, "staging", 0),
        (1, "production", 100),
    ]


async def test_staff_set_a_canary_promote_roll_back_and_add_a_label_set(staging_version, staff):
    staff = signed_in(ModelsState, staff)
    await send(staff, ModelsState.load)

    await send(staff, ModelsState.move_canary, [50])
    await send(staff, ModelsState.apply_canary)
    assert [(v.number, v.traffic_percent) for v in staff.versions] == [(2, 50), (1, 50)]
    assert (staff.canary_version, staff.canary_percent) == (2, 50)

    await send(staff, ModelsState.promote, 2)
    assert [(v.number, v.stage) for v in staff.versions] == [(2, "production"), (1, "archived")]
    assert staff.production_version == 2
    assert staff.labels_text == "finance: money and markets\ngames: sport"

    await send(staff, ModelsState.rollback)
    assert [(v.number, v.stage) for v in staff.versions] == [(2, "archived"), (1, "production")]
    assert staff.production_version == 1

    await send(staff, ModelsState.create_version, {"labels": "weather: rain and sun\n\nfood\n"})
    assert (staff.versions[0].number, staff.versions[0].stage, staff.versions[0].labels) == (
        3,
        "staging",
        "weather, food",
    )
    assert [e.action for e in staff.events][:4] == ["create_version", "rollback", "promote", "set_canary"]
    assert staff.events[0].user == "staff@x.io"


async def test_a_bad_label_set_is_explained_and_creates_nothing(staging_version, staff, viewer):
    staff = signed_in(ModelsState, staff)
    await send(staff, ModelsState.load)
    before = registry_snapshot(viewer)
    refusal = await send(staff, ModelsState.create_version, {"labels": "only-one"})
    assert "needs 2 to 50 labels" in str(refusal)
    assert registry_snapshot(viewer) == before


async def test_a_viewer_predicts_one_result_per_line_with_a_score_per_label(builtin_models, viewer):
    viewer = signed_in(PredictState, viewer)
    await send(viewer, PredictState.load)
    assert viewer.model_name == CLASSIFIER_NAME
    lines = "Shares fell after the central bank raised interest rates.\n\n  The striker scored twice in the final.  \n"
    await send(viewer, PredictState.predict, {"inputs": lines})
    assert viewer.error == ""
    assert [(r.index, r.label) for r in viewer.results] == [(0, "business"), (1, "sport")]
    assert viewer.results[1].text == "The striker scored twice in the final."
    assert {score["label"] for score in viewer.results[0].scores} == {
        "business",
        "entertainment",
        "politics",
        "sport",
        "tech",
    }
    assert sum(score["percent"] for score in viewer.results[0].scores) == pytest.approx(100, abs=0.5)
    assert viewer.version == 1 and viewer.cached == 0

    await send(viewer, PredictState.predict, {"inputs": lines})
    assert viewer.cached == 2

    await send(viewer, PredictState.choose_model, EMBEDDER_NAME)
    assert viewer.results == [] and viewer.is_embedder
    await send(viewer, PredictState.predict, {"inputs": lines})
    assert [(r.label, r.scores) for r in viewer.results] == [("", []), ("", [])]
    assert viewer.results[0].embedding.startswith("384 dimensions: [")


@pytest.fixture
def one_request_a_minute(monkeypatch):
    monkeypatch.setenv("STRATA_RATE_LIMIT_PER_MINUTE", "1")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


async def test_prediction_errors_show_as_a_message_not_a_crash(builtin_models, viewer, one_request_a_minute):
    viewer = signed_in(PredictState, viewer)
    await send(viewer, PredictState.load)

    await send(viewer, PredictState.predict, {"inputs": "  \n "})
    assert viewer.error == "Type or paste some text: one input per line."

    await send(viewer, PredictState.predict, {"inputs": "Parliament votes on the budget."})
    assert viewer.error == "" and len(viewer.results) == 1
    await send(viewer, PredictState.predict, {"inputs": "Parliament votes on the budget."})
    assert viewer.error.startswith("Rate limit of 1 requests a minute reached")
    assert viewer.results == []
