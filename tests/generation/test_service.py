"""Answers through the generation service: grounded and cited, stoppable, concurrent, and
falling back to an extractive answer when no model can run. The remote generator is a
second Strata process's own /v1/chat/completions."""

import asyncio
import threading

import pytest

from app.core.errors import ServiceUnavailable
from app.core.settings import get_settings
from app.generation import service
from app.generation.schemas import ChatMessage
from app.knowledge.schemas import Passage

WAREHOUSE = "The Strata warehouse in Lyon opens at 7:30 on weekdays and closes at 18:00."
CANTEEN = "The canteen is open from 11:30 to 14:00 and serves a vegetarian dish every day."


def passage(text: str, n: int = 1, document: str = "Facilities.pdf") -> Passage:
    return Passage(
        chunk_id=f"c{n}",
        knowledge_base_id=1,
        knowledge_base_name="Facilities",
        document_id=n,
        document_name=document,
        page=n,
        text=text,
        score=1.0 / n,
    )


async def answer(question: str, passages: list[Passage], history: list[ChatMessage] | None = None) -> str:
    return "".join(
        [piece async for piece in service.stream_answer(question=question, passages=passages, history=history or [])]
    )


def decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("strata-generate") and t.is_alive()]


@pytest.fixture
def llm_settings(monkeypatch):
    """Switch generation settings for one test (env vars, as an admin would)."""

    def configure(**env: str) -> None:
        for name, value in env.items():
            monkeypatch.setenv(f"STRATA_{name.upper()}", value)
        get_settings.cache_clear()

    yield configure
    monkeypatch.undo()
    get_settings.cache_clear()


async def test_local_model_answers_from_the_passage_and_cites_it(llm_settings):
    llm_settings(llm_base_url="")
    assert service.describe_generator().kind == "local"
    text = await answer("When does the Lyon warehouse open?", [passage(WAREHOUSE)])
    assert "7:30" in text
    assert "[1]" in text


async def test_stop_ends_the_decode_thread(llm_settings):
    llm_settings(llm_base_url="")
    stream = service.stream_answer(
        question="Describe everything about the warehouse and the canteen in detail.",
        passages=[passage(WAREHOUSE), passage(CANTEEN, 2)],
        history=[],
        max_tokens=300,
    )
    first = await anext(stream)
    assert first
    assert decode_threads(), "the answer should still be being written"
    await stream.aclose()
    assert decode_threads() == []


async def test_two_askers_each_get_their_own_answer(llm_settings):
    llm_settings(llm_base_url="")
    warehouse, canteen = await asyncio.gather(
        answer("When does the Lyon warehouse open?", [passage(WAREHOUSE)]),
        answer("When is the canteen open?", [passage(CANTEEN)]),
    )
    assert "7:30" in warehouse and "11:30" not in warehouse
    assert "11:30" in canteen and "7:30" not in canteen
    assert decode_threads() == []


async def test_without_a_model_the_answer_is_extractive_and_cited(llm_settings, tmp_path):
    llm_settings(llm_base_url="", models_dir=str(tmp_path / "no-models"))
    assert service.describe_generator().kind == "extractive"
    text = await answer(
        "When does the Lyon warehouse open?",
        [passage(CANTEEN, 1), passage("Parking is free for visitors. " + WAREHOUSE, 2)],
    )
    assert text.startswith("Extractive answer")
    assert "opens at 7:30 on weekdays" in text and "[2]" in text
    assert "canteen" not in text  # nothing about the question in it

    nothing = await answer("Who founded the company?", [passage(CANTEEN)])
    assert "no passage mentions" in nothing and "[1]" in nothing

    with pytest.raises(ServiceUnavailable, match="No generator"):
        await anext(service.stream_chat(messages=[ChatMessage(role="user", content="Hello")]))


async def test_remote_server_answers_when_configured(llm_settings, strata_api, make_api_key):
    key, _ = make_api_key()
    llm_settings(llm_base_url=strata_api, llm_model="strata-chat", llm_api_key=key)
    info = service.describe_generator()
    assert (info.kind, info.model) == ("remote", "strata-chat")
    text = await answer("When does the Lyon warehouse open?", [passage(WAREHOUSE)])
    assert "7:30" in text and "[1]" in text
    assert decode_threads() == []  # the other process did the decoding

    chat = "".join(
        [
            p
            async for p in service.stream_chat(
                messages=[ChatMessage(role="user", content="What is the capital of France?")]
            )
        ]
    )
    assert "Paris" in chat


async def test_unreachable_or_refusing_remote_falls_back_before_the_first_token(llm_settings, strata_api):
    from tests.conftest import free_port

    llm_settings(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="strata-chat")
    assert "7:30" in await answer("When does the Lyon warehouse open?", [passage(WAREHOUSE)])

    llm_settings(llm_base_url=strata_api, llm_api_key="sk-strata-wrong")  # a 401 from the server
    assert "7:30" in await answer("When does the Lyon warehouse open?", [passage(WAREHOUSE)])


async def test_long_passages_go_in_whole_best_first(llm_settings):
    llm_settings(llm_base_url="")
    filler = "Every delivery is checked against its order, signed by the driver and stored in the racks by zone. "
    passages = [passage(filler * 6 + WAREHOUSE, 1)] + [passage(filler * 8, n) for n in range(2, 9)]
    prompt = service.grounded_messages(question="When does the Lyon warehouse open?", passages=passages, history=[])
    assert WAREHOUSE in prompt[-1].content  # the fact at the end of the best passage is not cut off
    assert "[8]" not in prompt[-1].content  # what does not fit is the least relevant
    assert "7:30" in await answer("When does the Lyon warehouse open?", passages)


def test_a_long_history_cannot_push_the_prompt_over_its_budget(llm_settings):
    llm_settings(llm_max_prompt_tokens="200")  # about 800 characters
    history = [
        ChatMessage(role="user" if n % 2 == 0 else "assistant", content=f"turn {n} " + "blah " * 120) for n in range(4)
    ]
    prompt = service.grounded_messages(
        question="When does the Lyon warehouse open?", passages=[passage(WAREHOUSE)], history=history
    )
    assert WAREHOUSE in prompt[-1].content  # the passage keeps its room
    assert sum(len(message.content) for message in prompt) <= 800


@pytest.mark.parametrize(
    ("setting", "value"),
    [("llm_repetition_penalty", 0), ("llm_repetition_penalty", -1.2), ("llm_temperature", -0.1), ("llm_max_tokens", 0)],
)
def test_a_decoding_setting_that_cannot_work_is_refused_at_start_by_name(setting, value):
    from pydantic import ValidationError

    from app.core.settings import Settings

    with pytest.raises(ValidationError, match=setting):
        Settings(**{setting: value})
