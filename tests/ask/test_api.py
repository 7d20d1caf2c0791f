"""Asking over HTTP and through the service: steps, passages, streamed answer, citations,
conversations, feedback and who may read what, against the real Alice PDF."""

import json

from app.ask import service
from app.ask.tables import AnswerStatus
from app.core.db import session_scope
from app.core.settings import get_settings
from tests.conftest import sign_in
from tests.knowledge.conftest import (
    ALICE_ANSWER_PAGE,
    ALICE_ANSWER_TEXT,
    ALICE_QUESTION,
    create_kb,
    upload,
)

NOTES_QUESTION = "Who hosts the tea party?"


def server_sent_events(body: str) -> list[tuple[str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_streamed_answer_shows_steps_then_passages_then_tokens_and_is_saved(client, alice_kb):
    response = await client.post(
        "/api/v1/ask",
        headers=alice_kb["headers"],
        json={"question": ALICE_QUESTION, "knowledge_base_ids": [alice_kb["id"]], "stream": True},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = server_sent_events(response.text)
    kinds = [kind for kind, _ in events]
    assert kinds[:3] == ["conversation", "step", "passages"], kinds
    assert kinds[3] == "step" and events[3][1]["step"] == "writing"
    assert kinds[-1] == "done" and kinds.count("token") >= 5

    passages = events[2][1]["passages"]
    assert events[2][1]["message"] == f"{len(passages)} passages found"
    best = passages[0]
    assert best["page"] == ALICE_ANSWER_PAGE and ALICE_ANSWER_TEXT in best["text"].upper()
    assert best["document_name"] == "alice.pdf" and best["score"] > 0

    answer = "".join(data["text"] for kind, data in events if kind == "token")
    checked, done = events[-2][1], events[-1][1]
    assert kinds[-2] == "grounding" and checked["sentences"]
    assert [answer[s["start"] : s["end"]] for s in checked["sentences"]] == [s["text"] for s in checked["sentences"]]
    saved = await client.get(f"/api/v1/conversations/{done['conversation_id']}", headers=alice_kb["headers"])
    question, reply = saved.json()["messages"]
    assert (question["role"], question["content"]) == ("user", ALICE_QUESTION)
    # What was streamed is kept, unless the grounding check replaced it (tests/ask/test_answer_grounding.py).
    kept = checked["replacement"] or answer
    assert (reply["id"], reply["content"], reply["status"]) == (done["message_id"], kept, "complete")
    assert reply["passages"][0]["page"] == ALICE_ANSWER_PAGE


async def test_json_answer_and_a_follow_up_in_the_same_conversation(client, notes_kb):
    ask = {"question": NOTES_QUESTION, "knowledge_base_ids": [notes_kb["id"]]}
    first = await client.post("/api/v1/ask", headers=notes_kb["headers"], json=ask)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["answer"] and body["status"] == "complete" and "Hatter" in body["passages"][0]["text"]
    assert body["passages"][0]["document_name"] == "notes.md"
    assert all(1 <= number <= len(body["passages"]) for number in body["cited"])

    follow_up = await client.post(
        "/api/v1/ask",
        headers=notes_kb["headers"],
        json={**ask, "question": "At what time?", "conversation_id": body["conversation_id"]},
    )
    assert follow_up.status_code == 200, follow_up.text
    assert follow_up.json()["conversation_id"] == body["conversation_id"]
    conversations = (await client.get("/api/v1/conversations", headers=notes_kb["headers"])).json()
    assert [(c["id"], c["title"]) for c in conversations] == [(body["conversation_id"], NOTES_QUESTION)]
    detail = (await client.get(f"/api/v1/conversations/{body['conversation_id']}", headers=notes_kb["headers"])).json()
    assert [(m["role"], m["content"]) for m in detail["messages"]] == [
        ("user", NOTES_QUESTION),
        ("assistant", body["answer"]),
        ("user", "At what time?"),
        ("assistant", follow_up.json()["answer"]),
    ]


async def test_a_viewer_without_access_gets_nothing_from_the_knowledge_base(client, notes_kb, viewer):
    viewer_headers = await sign_in(client, viewer.email)
    ask = {"question": NOTES_QUESTION, "knowledge_base_ids": [notes_kb["id"]]}
    for stream in (False, True):
        refused = await client.post("/api/v1/ask", headers=viewer_headers, json={**ask, "stream": stream})
        assert refused.status_code == 404
        assert refused.json()["detail"] == f"Knowledge base {notes_kb['id']} does not exist or you may not read it."
        assert "Hatter" not in refused.text

    # Nor can they open someone else's conversation or rate its answer.
    answer = (await client.post("/api/v1/ask", headers=notes_kb["headers"], json=ask)).json()
    assert (
        await client.get(f"/api/v1/conversations/{answer['conversation_id']}", headers=viewer_headers)
    ).status_code == 404
    feedback = await client.post(
        f"/api/v1/messages/{answer['message_id']}/feedback", headers=viewer_headers, json={"rating": 1}
    )
    assert feedback.status_code == 404
    assert (await client.get("/api/v1/conversations", headers=viewer_headers)).json() == []


async def test_feedback_is_stored_with_its_comment_and_bad_ratings_are_refused(client, notes_kb):
    headers = notes_kb["headers"]
    answer = (
        await client.post(
            "/api/v1/ask", headers=headers, json={"question": NOTES_QUESTION, "knowledge_base_ids": [notes_kb["id"]]}
        )
    ).json()
    rated = await client.post(
        f"/api/v1/messages/{answer['message_id']}/feedback",
        headers=headers,
        json={"rating": -1, "comment": "Too short"},
    )
    assert rated.status_code == 200 and (rated.json()["rating"], rated.json()["feedback_comment"]) == (-1, "Too short")
    bad = await client.post(f"/api/v1/messages/{answer['message_id']}/feedback", headers=headers, json={"rating": 5})
    assert bad.status_code == 422 and "thumbs" in bad.json()["detail"]

    deleted = await client.delete(f"/api/v1/conversations/{answer['conversation_id']}", headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(f"/api/v1/conversations/{answer['conversation_id']}", headers=headers)).status_code == 404


async def test_bad_questions_get_clear_errors_and_start_no_conversation(client, notes_kb):
    headers = notes_kb["headers"]
    for body, status, detail in (
        ({"question": "  ", "knowledge_base_ids": [notes_kb["id"]]}, 422, "Type a question."),
        ({"question": "x" * 4001, "knowledge_base_ids": [notes_kb["id"]]}, 422, "limited to 4000"),
        ({"question": "Who?", "knowledge_base_ids": []}, 422, "knowledge_base_ids"),
        ({"question": "Who?", "knowledge_base_ids": [notes_kb["id"] + 999]}, 404, "does not exist"),
    ):
        response = await client.post("/api/v1/ask", headers=headers, json={**body, "stream": True})
        assert response.status_code == status and detail in response.json()["detail"], response.text
    assert (await client.get("/api/v1/conversations", headers=headers)).json() == []


async def test_asking_while_documents_are_still_ingesting_says_so(client, staff):
    """No worker runs here, so the upload stays queued."""
    headers = await sign_in(client, staff.email)
    kb = await create_kb(client, headers, name="Pending")
    assert (
        await upload(client, headers, kb["id"], ("notes.txt", b"The Hatter's tea party never ends."))
    ).status_code == 202
    body = (
        await client.post(
            "/api/v1/ask",
            headers=headers,
            json={"question": "Who hosts the tea party?", "knowledge_base_ids": [kb["id"]]},
        )
    ).json()
    assert body["notices"] == ["1 document is still being ingested in Pending; this answer cannot use them yet."]
    assert body["passages"] == [] and body["answer"] == service.NOTHING_FOUND


async def test_closing_the_stream_stops_the_answer_and_saves_it_as_stopped(notes_kb, staff):
    events = service.ask(actor=staff, question=NOTES_QUESTION, knowledge_base_ids=[notes_kb["id"]])
    seen = []
    async for event in events:
        seen.append(event)
        if event.type == "token":
            break
    await events.aclose()
    conversation_id = seen[0].data["conversation_id"]
    with session_scope() as db_session:
        *_, answer = service.conversation_messages(db_session=db_session, actor=staff, conversation_id=conversation_id)
    assert answer.status == AnswerStatus.stopped.value
    assert answer.content == seen[-1].data["text"]


async def test_asking_over_the_rate_limit_is_a_429_with_retry_after(client, staff, monkeypatch):
    monkeypatch.setattr(get_settings(), "rate_limit_per_minute", 1)
    headers = await sign_in(client, staff.email)
    ask = {"question": NOTES_QUESTION, "knowledge_base_ids": [12345]}
    assert (await client.post("/api/v1/ask", headers=headers, json=ask)).status_code == 404
    refused = await client.post("/api/v1/ask", headers=headers, json={**ask, "stream": True})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "1 requests a minute" in refused.json()["detail"]
