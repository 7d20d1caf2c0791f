"""The `strata-rag` model through the official `openai` package: answers from the caller's
knowledge bases with their sources, and nothing from a knowledge base the caller may not read."""

import httpx
import openai
import pytest

from app.api import build_api
from app.auth import service as auth_service
from app.core.db import session_scope
from app.openai_compat.service import RAG_MODEL

QUESTION = [{"role": "user", "content": "Who hosts the tea party?"}]


def openai_client(user) -> openai.AsyncOpenAI:
    with session_scope() as db_session:
        _, key = auth_service.create_api_key(
            db_session=db_session, actor=auth_service.SYSTEM, user_id=user.id, name="openai client"
        )
    transport = httpx.ASGITransport(app=build_api())
    return openai.AsyncOpenAI(
        base_url="http://strata/v1",
        api_key=key,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=transport, timeout=120),
    )


async def test_answers_from_the_readable_knowledge_bases_with_sources(notes_kb, staff):
    client = openai_client(staff)
    assert RAG_MODEL in {model.id async for model in client.models.list()}

    completion = await client.chat.completions.create(model=RAG_MODEL, messages=QUESTION)
    answer = completion.choices[0].message.content
    assert answer and "Sources:\n[" in answer and "notes.md (Notes)" in answer

    stream = await client.chat.completions.create(
        model=RAG_MODEL, messages=QUESTION, stream=True, extra_body={"knowledge_base_ids": [notes_kb["id"]]}
    )
    pieces = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices[0].delta.content]
    assert len(pieces) > 3 and "notes.md (Notes)" in "".join(pieces)


async def test_a_viewer_gets_nothing_from_a_knowledge_base_they_may_not_read(notes_kb, viewer):
    client = openai_client(viewer)
    with pytest.raises(openai.NotFoundError) as nothing_readable:
        await client.chat.completions.create(model=RAG_MODEL, messages=QUESTION)
    assert nothing_readable.value.body["message"] == "You may not read any knowledge base."
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as refused:
            await client.chat.completions.create(
                model=RAG_MODEL, messages=QUESTION, stream=stream, extra_body={"knowledge_base_ids": [notes_kb["id"]]}
            )
        assert "does not exist or you may not read it" in refused.value.body["message"]
