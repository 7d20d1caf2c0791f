"""Every answer's grounding check, as askers meet it: the built-in model's unsupported answer
replaced by the passages' own sentences (streamed, in JSON and saved), an external server's
kept with its unsupported sentences marked (API, Ask page, /v1 strata-rag), and answer
quality per generator and hour for the Monitoring page."""

from datetime import UTC, datetime, timedelta

import pytest

from app.ask import grounding, service
from app.ask.state import AskState
from app.ask.tables import AnswerStatus, Message
from app.core.db import session_scope
from app.core.errors import Forbidden, InvalidInput
from app.core.settings import get_settings
from app.openai_compat.service import RAG_MODEL
from models.grounding import content_words
from models.manifest import GENERATOR_NAME
from tests.ask.test_api import NOTES_QUESTION, server_sent_events
from tests.ask.test_openai_rag import openai_client
from tests.predict.test_state import send, signed_in

COPIED = "The Mad Hatter hosts the tea party at six o'clock [1]."
INVENTED = "Install it with pip install hatter-party and restart the kernel."


def configure(monkeypatch, **values) -> None:
    for name, value in values.items():
        monkeypatch.setattr(get_settings(), name, value)


async def ask(client, notes_kb, *, stream: bool):
    response = await client.post(
        "/api/v1/ask",
        headers=notes_kb["headers"],
        json={"question": NOTES_QUESTION, "knowledge_base_ids": [notes_kb["id"]], "stream": stream},
    )
    assert response.status_code == 200, response.text
    return server_sent_events(response.text) if stream else response.json()


async def saved_answer(client, notes_kb, conversation_id: int) -> dict:
    detail = await client.get(f"/api/v1/conversations/{conversation_id}", headers=notes_kb["headers"])
    return detail.json()["messages"][-1]


async def test_the_built_in_models_unsupported_answer_is_replaced_by_the_passages_own_sentences(
    client, notes_kb, monkeypatch
):
    # No sentence can reach this threshold: whatever the model writes is unsupported.
    configure(monkeypatch, grounding_sentence_threshold=1.01)
    events = await ask(client, notes_kb, stream=True)
    kinds = [kind for kind, _ in events]
    assert kinds[-2:] == ["grounding", "done"] and kinds.count("token") >= 5
    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    checked, done = events[-2][1], events[-1][1]
    assert checked["flagged"] and checked["support"] == 0.0 and checked["fallback"] == "extractive"
    assert checked["notice"] == grounding.FALLBACK_NOTICE
    assert checked["replaced_answer"] == streamed
    assert [streamed[s["start"] : s["end"]] for s in checked["sentences"]] == [s["text"] for s in checked["sentences"]]
    assert not any(s["supported"] for s in checked["sentences"] if s["score"] > 0)
    replacement = checked["replacement"]
    assert replacement.startswith(grounding.FALLBACK_PREFIX) and "Hatter" in replacement and "[1]" in replacement
    assert done["cited"] == [1] and done["generator"] == GENERATOR_NAME

    saved = await saved_answer(client, notes_kb, done["conversation_id"])
    assert saved["content"] == replacement and saved["generator"] == GENERATOR_NAME
    assert saved["grounding"]["fallback"] == "extractive" and saved["grounding"]["replaced_answer"] == streamed

    body = await ask(client, notes_kb, stream=False)
    assert body["answer"].startswith(grounding.FALLBACK_PREFIX) and "Hatter" in body["answer"]
    assert body["notices"] == [grounding.FALLBACK_NOTICE]
    assert body["grounding"]["flagged"] and body["grounding"]["fallback"] == "extractive"
    with session_scope() as db_session:
        message = db_session.get(Message, body["message_id"])
        assert (message.grounding_flagged, message.grounding_support) == (True, 0.0)


async def test_a_supported_built_in_answer_is_kept_with_its_sentences_scored(client, notes_kb, monkeypatch):
    configure(monkeypatch, grounding_sentence_threshold=0.0, grounding_answer_threshold=0.5)
    events = await ask(client, notes_kb, stream=True)
    streamed = "".join(data["text"] for kind, data in events if kind == "token")
    checked = events[-2][1]
    assert events[-2][0] == "grounding" and checked["replacement"] is None and checked["notice"] == ""
    assert (checked["support"], checked["flagged"], checked["fallback"]) == (1.0, False, None)
    assert checked["sentences"] and all(s["supported"] for s in checked["sentences"])
    assert [streamed[s["start"] : s["end"]] for s in checked["sentences"]] == [s["text"] for s in checked["sentences"]]
    saved = await saved_answer(client, notes_kb, events[-1][1]["conversation_id"])
    assert saved["content"] == streamed and saved["grounding"]["support"] == 1.0


@pytest.fixture
def inventing_server(fake_llm, monkeypatch):
    """An external model server that copies one sentence from the notes and invents another;
    its answers are flagged whenever anything in them is unsupported."""
    fake_llm.pieces = [COPIED[:20], COPIED[20:] + " ", INVENTED]
    configure(monkeypatch, grounding_answer_threshold=0.99)
    return fake_llm


async def test_an_external_models_answer_is_flagged_and_kept_with_its_unsupported_sentence_marked(
    client, notes_kb, inventing_server
):
    events = await ask(client, notes_kb, stream=True)
    checked = events[-2][1]
    assert checked["flagged"] and checked["replacement"] is None and checked["fallback"] is None
    assert checked["notice"] == grounding.FLAGGED_NOTICE
    assert [(s["text"], s["supported"]) for s in checked["sentences"]] == [(COPIED, True), (INVENTED, False)]

    body = await ask(client, notes_kb, stream=False)
    assert body["answer"] == f"{COPIED} {INVENTED}" and body["notices"] == [grounding.FLAGGED_NOTICE]
    assert [s["supported"] for s in body["grounding"]["sentences"]] == [True, False]


async def test_the_ask_page_marks_unsupported_sentences_and_says_why(notes_kb, staff, inventing_server):
    tab = signed_in(AskState, staff)
    await send(tab, AskState.load)
    await send(tab, AskState.ask, {"question": NOTES_QUESTION})
    assert not tab.live_error
    answer = tab.turns[-1]
    assert answer.role == "assistant" and answer.grounding_notice == grounding.FLAGGED_NOTICE
    assert answer.replaced_segments == []
    marked = "".join(piece.text for piece in answer.segments if piece.unsupported)
    assert marked == INVENTED
    assert [piece.text for piece in answer.segments if piece.number] == ["[1]"]
    assert not any(piece.unsupported for piece in answer.segments if "Hatter hosts" in piece.text)


async def test_the_ask_page_shows_the_fallback_and_its_notice(notes_kb, staff, monkeypatch):
    configure(monkeypatch, grounding_sentence_threshold=1.01)
    tab = signed_in(AskState, staff)
    await send(tab, AskState.load)
    await send(tab, AskState.ask, {"question": NOTES_QUESTION})
    answer = tab.turns[-1]
    assert answer.grounding_notice == grounding.FALLBACK_NOTICE
    assert answer.text.startswith(grounding.FALLBACK_PREFIX) and "Hatter" in answer.text
    assert not any(piece.unsupported for piece in answer.segments)
    # The model's own answer stays readable beside it, every sentence with a claim marked.
    with session_scope() as db_session:
        saved = db_session.get(Message, answer.message_id).grounding
    assert "".join(piece.text for piece in answer.replaced_segments) == saved["replaced_answer"]
    checked = [item["text"] for item in saved["sentences"] if item["score"] > 0]
    marked = "".join(piece.text for piece in answer.replaced_segments if piece.unsupported)
    assert checked and all(set(content_words(sentence)) <= set(content_words(marked)) for sentence in checked)


async def test_strata_rag_completions_carry_the_verdict_after_the_answer(notes_kb, staff, inventing_server):
    completion = await openai_client(staff).chat.completions.create(
        model=RAG_MODEL, messages=[{"role": "user", "content": NOTES_QUESTION}]
    )
    content = completion.choices[0].message.content
    assert content.startswith(f"{COPIED} {INVENTED}\n\n({grounding.FLAGGED_NOTICE})")
    assert "Sources:\n[1] notes.md (Notes)" in content


def _answer(db_session, user, *, at: datetime, generator: str, flagged: bool | None, rating: int | None) -> None:
    conversation_id, _ = service.record_question(
        db_session=db_session, actor=user, conversation_id=None, question="Who?", knowledge_base_ids=[]
    )
    record = None if flagged is None else {"support": 0.2 if flagged else 0.9, "flagged": flagged}
    message = service.record_answer(
        db_session=db_session,
        conversation_id=conversation_id,
        content="An answer.",
        passages=[],
        status=AnswerStatus.complete,
        generator=generator,
        grounding_record=record,
    )
    message.rating, message.created_at = rating, at
    db_session.add(message)


def test_answer_quality_per_generator_and_hour_is_aggregated_for_staff(db, staff, viewer):
    hour = datetime(2026, 3, 2, 9, tzinfo=UTC)
    with session_scope() as db_session:
        for minute, generator, flagged, rating in (
            (5, "SmolLM2", True, -1),
            (20, "SmolLM2", False, 1),
            (40, "SmolLM2", False, None),
            (55, "extractive", False, 1),
            (65, "SmolLM2", None, 1),  # next hour; stopped, so never checked
            (-5, "SmolLM2", True, -1),  # before the period
        ):
            _answer(
                db_session,
                staff,
                at=hour + timedelta(minutes=minute),
                generator=generator,
                flagged=flagged,
                rating=rating,
            )
    with session_scope() as db_session:
        rows = grounding.answer_quality_by_hour(
            db_session=db_session, actor=staff, since=hour, until=hour + timedelta(hours=2)
        )
        assert [(r.hour, r.generator, r.answers, r.checked, r.flagged, r.rated, r.thumbs_up) for r in rows] == [
            (hour, "SmolLM2", 3, 3, 1, 2, 1),
            (hour, "extractive", 1, 1, 0, 1, 1),
            (hour + timedelta(hours=1), "SmolLM2", 1, 0, 0, 1, 1),
        ]
        smollm2 = rows[0]
        assert smollm2.grounded_rate == pytest.approx(2 / 3) and smollm2.thumbs_up_rate == 0.5
        assert smollm2.mean_support == pytest.approx((0.2 + 0.9 + 0.9) / 3, abs=1e-4)
        assert rows[2].grounded_rate is None and rows[2].mean_support is None

        with pytest.raises(Forbidden):
            grounding.answer_quality_by_hour(db_session=db_session, actor=viewer, since=hour, until=hour)
        with pytest.raises(InvalidInput, match="end must come after"):
            grounding.answer_quality_by_hour(db_session=db_session, actor=staff, since=hour, until=hour)
