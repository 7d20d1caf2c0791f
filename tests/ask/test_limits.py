"""What one asker may cost, through the API and the pages alike: requests a minute (search
and uploads too), answers being written at once (a client that leaves gives its slot back),
and failures that name no internal server. The language model server is a fake one."""

import asyncio
import io

import pytest
from starlette.datastructures import UploadFile

from app.api import build_api
from app.ask import service
from app.ask.state import AskState
from app.core import ratelimit
from app.core.db import session_scope
from app.core.errors import TooManyAttempts
from app.core.settings import get_settings
from app.generation.service import UNREACHABLE
from app.knowledge.state import KnowledgeState
from tests.ask.test_api import NOTES_QUESTION, server_sent_events
from tests.conftest import sign_in
from tests.generation.conftest import AsgiStream, eventually
from tests.knowledge.conftest import create_kb, upload
from tests.predict.test_state import send, signed_in


def configure(monkeypatch, **values) -> None:
    for name, value in values.items():
        monkeypatch.setattr(get_settings(), name, value)


def assert_429(response, words: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1 and words in response.json()["detail"]


async def test_search_and_uploads_count_against_the_rate_limit(client, staff, viewer, monkeypatch):
    configure(monkeypatch, rate_limit_per_minute=1)
    headers = await sign_in(client, viewer.email)
    assert (await client.post("/api/v1/search", headers=headers, json={"query": "tea party"})).status_code != 429
    assert_429(await client.post("/api/v1/search", headers=headers, json={"query": "tea party"}), "1 requests a minute")

    headers = await sign_in(client, staff.email)
    assert (await upload(client, headers, 12345, ("notes.txt", b"Tea at six."))).status_code == 404
    assert_429(await upload(client, headers, 12345, ("notes.txt", b"Tea at six.")), "1 requests a minute")


async def test_the_knowledge_page_uploads_count_against_the_same_rate_limit(client, staff, monkeypatch):
    configure(monkeypatch, rate_limit_per_minute=2)
    headers = await sign_in(client, staff.email)
    kb = await create_kb(client, headers, name="Limits")
    tab = signed_in(KnowledgeState, staff)
    await send(tab, KnowledgeState.select, kb["id"])
    for name in ("one.txt", "two.txt"):
        assert not await send(
            tab, KnowledgeState.upload, [UploadFile(io.BytesIO(b"Tea at " + name.encode()), filename=name)]
        )
    refused = await send(tab, KnowledgeState.upload, [UploadFile(io.BytesIO(b"Tea at three."), filename="three.txt")])
    assert "Rate limit of 2 requests a minute reached" in str(refused)
    documents = (await client.get(f"/api/v1/knowledge/{kb['id']}/documents", headers=headers)).json()
    assert sorted(document["filename"] for document in documents) == ["one.txt", "two.txt"]


async def test_the_ask_page_counts_against_the_same_rate_limit(client, viewer, monkeypatch):
    configure(monkeypatch, rate_limit_per_minute=2)
    tab = signed_in(AskState, viewer)
    await send(tab, AskState.load)  # the viewer may read no knowledge base: the ask is refused after it counted
    await send(tab, AskState.ask, {"question": "Who hosts the tea party?"})
    assert tab.live_error == "Choose at least one knowledge base to ask."
    headers = await sign_in(client, viewer.email)
    ask = {"question": NOTES_QUESTION, "knowledge_base_ids": [12345]}
    assert (await client.post("/api/v1/ask", headers=headers, json=ask)).status_code == 404
    await send(tab, AskState.ask, {"question": "Who hosts the tea party?"})
    assert "Rate limit of 2 requests a minute reached" in tab.live_error
    assert_429(await client.post("/api/v1/ask", headers=headers, json=ask), "2 requests a minute")


def _sse_ask(notes_kb) -> AsgiStream:
    body = {"question": NOTES_QUESTION, "knowledge_base_ids": [notes_kb["id"]], "stream": True}
    return AsgiStream(build_api(), "/api/v1/ask", headers=notes_kb["headers"], body=body)


async def test_answers_at_once_are_capped_across_the_api_and_the_ask_page_and_a_client_that_leaves_frees_its_slot(
    client,
    notes_kb,
    staff,
    fake_llm,
    monkeypatch,
):
    fake_llm.mode = "hold"  # every answer stays open after its first piece
    configure(monkeypatch, max_streams_per_user=1)
    streaming = await _sse_ask(notes_kb).start()
    assert streaming.status == 200
    await streaming.read_until("The warehouse")

    refused = await client.post(
        "/api/v1/ask",
        headers=notes_kb["headers"],
        json={"question": NOTES_QUESTION, "knowledge_base_ids": [notes_kb["id"]], "stream": True},
    )
    assert_429(refused, "You already have 1 answer being written")
    tab = signed_in(AskState, staff)
    await send(tab, AskState.load)
    await send(tab, AskState.ask, {"question": NOTES_QUESTION})
    assert "You already have 1 answer being written" in tab.live_error and not tab.generating

    await streaming.leave()  # the browser tab or client closes the connection mid-answer

    async def slot_free() -> bool:
        try:
            async with ratelimit.stream_slot(staff.id):
                return True
        except TooManyAttempts:
            return False

    await eventually(slot_free, "the slot of the client that left")

    async def kept_as_stopped() -> bool:  # what was written before the client left
        with session_scope() as db_session:
            [conversation] = service.list_conversations(db_session=db_session, actor=staff)
            *_, left = service.conversation_messages(
                db_session=db_session, actor=staff, conversation_id=conversation.id
            )
        return (left.role, left.status, left.content) == ("assistant", "stopped", "The warehouse ")

    await eventually(kept_as_stopped, "the answer of the client that left to be saved as stopped")

    # The page's own answer takes the slot that came back, and holds it while it is written.
    page_answer = asyncio.create_task(send(tab, AskState.ask, {"question": NOTES_QUESTION}))
    await eventually(lambda: _answer_started(fake_llm, 2), "the page's answer to reach the language model")
    assert_429(
        await client.post(
            "/api/v1/ask",
            headers=notes_kb["headers"],
            json={"question": "Again?", "knowledge_base_ids": [notes_kb["id"]]},
        ),
        "answer being written",
    )
    fake_llm.release.set()
    await asyncio.wait_for(page_answer, 120)
    assert tab.live_error == "" and "The warehouse opens at 7:30 [1]." in tab.turns[-1].text
    answered = await client.post(
        "/api/v1/ask", headers=notes_kb["headers"], json={"question": "Again?", "knowledge_base_ids": [notes_kb["id"]]}
    )
    assert answered.status_code == 200 and answered.json()["status"] == "complete"


async def _answer_started(fake_llm, count: int) -> bool:
    return fake_llm.waiting(count)


@pytest.mark.parametrize("stream", [True, False])
async def test_an_unreachable_answer_service_names_no_internal_host(client, notes_kb, fake_llm, stream, monkeypatch):
    fake_llm.mode = "break"  # the server drops the connection after the first piece
    configure(monkeypatch, llm_model="")  # a server that needs no model name: the writing step names none
    host = fake_llm.url.split("//")[1].split("/")[0]
    response = await client.post(
        "/api/v1/ask",
        headers=notes_kb["headers"],
        json={"question": NOTES_QUESTION, "knowledge_base_ids": [notes_kb["id"]], "stream": stream},
    )
    assert response.status_code == 200 and host not in response.text and "127.0.0.1" not in response.text
    if stream:
        errors = [data["message"] for kind, data in server_sent_events(response.text) if kind == "error"]
    else:
        errors = response.json()["notices"]
    assert errors == [UNREACHABLE]
