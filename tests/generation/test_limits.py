"""What one caller of the OpenAI-compatible API may cost: requests a minute, tokens, prompt
length, inputs, answers at once (a client that leaves gives its slot back), and errors that
name no internal server. The language model server is a fake one the test controls."""

import httpx
import pytest

from app.api import build_api
from app.core import ratelimit
from app.core.clients import reset_loop_redis
from app.core.settings import get_settings
from app.generation.service import UNREACHABLE
from app.openai_compat.service import CHAT_MODEL, EMBEDDING_MODEL
from app.predict.service import MAX_INPUT_CHARS, MAX_INPUTS_PER_REQUEST
from tests.generation.conftest import AsgiStream, eventually

QUESTION = [{"role": "user", "content": "When does the warehouse open?"}]


@pytest.fixture
async def api(db, redis_url):
    app = build_api()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://strata", timeout=60) as http:
        http.app = app
        yield http


@pytest.fixture
def key_headers(make_api_key):
    def make(email: str = "caller@strata.test") -> dict[str, str]:
        key, _ = make_api_key(email)
        return {"Authorization": f"Bearer {key}"}

    return make


def configure(monkeypatch, **values) -> None:
    for name, value in values.items():
        monkeypatch.setattr(get_settings(), name, value)


def assert_openai_429(response: httpx.Response, message: str) -> None:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["type"] == "rate_limit_error" and message in error["message"], error


async def test_chat_completions_and_embeddings_count_against_the_rate_limit(
    api, fake_llm, key_headers, builtin_models, monkeypatch
):
    configure(monkeypatch, rate_limit_per_minute=2)
    headers = key_headers()
    chat = {"model": CHAT_MODEL, "messages": QUESTION}
    embed = {"model": EMBEDDING_MODEL, "input": "The cat sits on the mat."}
    assert (await api.post("/v1/chat/completions", headers=headers, json=chat)).status_code == 200
    assert (await api.post("/v1/embeddings", headers=headers, json=embed)).status_code == 200
    for path, body in (
        ("/v1/chat/completions", chat),
        ("/v1/chat/completions", {**chat, "stream": True}),
        ("/v1/embeddings", embed),
    ):
        assert_openai_429(await api.post(path, headers=headers, json=body), "2 requests a minute")
    assert len(fake_llm.requests) == 1


async def test_max_tokens_is_clamped_to_the_server_limit(api, fake_llm, key_headers, monkeypatch):
    configure(monkeypatch, llm_max_tokens=50)
    headers = key_headers()
    for asked, sent in ((100_000, 50), (None, 50), (20, 20)):
        for field in ("max_tokens", "max_completion_tokens"):
            body = {"model": CHAT_MODEL, "messages": QUESTION, field: asked}
            response = await api.post("/v1/chat/completions", headers=headers, json=body)
            assert response.status_code == 200, response.text
            assert fake_llm.requests[-1]["max_tokens"] == sent


async def test_a_long_conversation_is_cut_to_the_prompt_budget_and_a_too_long_message_is_a_400(
    api, fake_llm, key_headers, monkeypatch
):
    configure(monkeypatch, llm_max_prompt_tokens=100)  # about 400 characters
    headers = key_headers()
    system = {"role": "system", "content": "Answer briefly."}
    turns = [
        {"role": "user" if n % 2 == 0 else "assistant", "content": f"turn {n}: " + "words " * 15} for n in range(10)
    ]
    last = {"role": "user", "content": "And when does the canteen open?"}
    response = await api.post(
        "/v1/chat/completions", headers=headers, json={"model": CHAT_MODEL, "messages": [system, *turns, last]}
    )
    assert response.status_code == 200, response.text
    sent = fake_llm.requests[-1]["messages"]
    assert sent[0] == system and sent[-1] == last
    assert sum(len(message["content"]) for message in sent) <= 400
    kept = [message["content"].split(":")[0] for message in sent[1:-1]]
    assert kept and kept == [f"turn {n}" for n in range(10 - len(kept), 10)]  # the latest turns

    for messages, param, words in (
        ([system, {"role": "user", "content": "why " * 101}], None, "too long"),
        ([{"role": "user", "content": "hi"}] * 201, "messages", "at most 200"),
        ([{"role": "user", "content": "x" * 100_001}], "messages", "at most 100000 are read"),
    ):
        response = await api.post(
            "/v1/chat/completions", headers=headers, json={"model": CHAT_MODEL, "messages": messages}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and words in error["message"] and error["param"] == param


async def test_embedding_inputs_are_bounded_in_number_and_length(api, key_headers, builtin_models):
    headers = key_headers()
    for inputs, words in (
        (["a sentence"] * (MAX_INPUTS_PER_REQUEST + 1), f"At most {MAX_INPUTS_PER_REQUEST} inputs"),
        (["fine", "x" * (MAX_INPUT_CHARS + 1)], f"the limit is {MAX_INPUT_CHARS}"),
    ):
        response = await api.post("/v1/embeddings", headers=headers, json={"model": EMBEDDING_MODEL, "input": inputs})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and words in error["message"]


async def test_embeddings_are_served_by_the_registered_embedder(api, key_headers, builtin_models, make_user):
    """Counted with its production version's predictions, so routed and cached with them."""
    texts = ["The cat sits on the mat.", "Quarterly revenue grew by 12%.", "It rains."]
    headers = key_headers()
    for _ in range(2):
        response = await api.post("/v1/embeddings", headers=headers, json={"model": EMBEDDING_MODEL, "input": texts})
        assert response.status_code == 200 and len(response.json()["data"]) == 3
    versions = (await api.get(f"/api/v1/models/{EMBEDDING_MODEL}/versions", headers=headers)).json()
    [production] = [version for version in versions if version["stage"] == "production"]
    assert production["served"] == 6


async def _open_stream(api, headers: dict) -> AsgiStream:
    body = {"model": CHAT_MODEL, "messages": QUESTION, "stream": True}
    return await AsgiStream(api.app, "/v1/chat/completions", headers=headers, body=body).start()


async def test_concurrent_completions_are_capped_per_user_and_a_client_that_leaves_frees_its_slot(
    api, fake_llm, key_headers, monkeypatch
):
    fake_llm.mode = "hold"  # every answer stays open after its first piece
    configure(monkeypatch, max_streams_per_user=2)
    headers = key_headers()
    streams = [await _open_stream(api, headers) for _ in range(2)]
    for stream in streams:
        assert stream.status == 200
        assert "The warehouse" in await stream.read_until("The warehouse")

    for streamed in (True, False):
        refused = await api.post(
            "/v1/chat/completions",
            headers=headers,
            json={"model": CHAT_MODEL, "messages": QUESTION, "stream": streamed},
        )
        assert_openai_429(refused, "2 answers being written")
    other = await _open_stream(api, key_headers("someone-else@strata.test"))  # another user has slots of their own
    assert other.status == 200
    await other.leave()

    await streams[0].leave()  # the client disconnects mid-answer

    async def accepted():
        stream = await _open_stream(api, headers)
        if stream.status == 200:
            return stream
        await stream.task

    replacement = await eventually(accepted, "the slot of the client that left")
    await replacement.leave()
    await streams[1].leave()


async def test_an_unreachable_answer_service_names_no_internal_host(api, fake_llm, key_headers):
    fake_llm.mode = "break"  # the server drops the connection after the first piece
    headers = key_headers()
    host = fake_llm.url.split("//")[1].split("/")[0]
    response = await api.post("/v1/chat/completions", headers=headers, json={"model": CHAT_MODEL, "messages": QUESTION})
    assert response.status_code == 503
    assert response.json()["error"]["message"] == UNREACHABLE
    assert host not in response.text and "127.0.0.1" not in response.text

    stream = await _open_stream(api, headers)
    body = await stream.read_until("[DONE]")
    assert UNREACHABLE in body and host not in body and "127.0.0.1" not in body
    await stream.task


@pytest.fixture
def redis_down(redis_url, valkey_server):
    """Valkey stopped for one test, as when the Redis server dies; started again after it."""
    ratelimit._local_buckets.clear()
    valkey_server.stop()
    reset_loop_redis()
    yield
    valkey_server.start()
    reset_loop_redis()


async def test_both_limits_still_bite_while_redis_is_down(api, fake_llm, key_headers, redis_down, monkeypatch):
    configure(monkeypatch, rate_limit_per_minute=3, max_streams_per_user=1)
    headers = key_headers()
    fake_llm.mode = "hold"
    held = await _open_stream(api, headers)
    assert held.status == 200
    await held.read_until("The warehouse")
    body = {"model": CHAT_MODEL, "messages": QUESTION}
    assert_openai_429(await api.post("/v1/chat/completions", headers=headers, json=body), "1 answer being written")
    await held.leave()
    fake_llm.release.set()
    # The count is this process's own while Redis is down: the slot is back as the request ends.
    answered = await api.post("/v1/chat/completions", headers=headers, json=body)
    assert answered.json()["choices"][0]["message"]["content"] == "The warehouse opens at 7:30 [1]."
    assert_openai_429(await api.post("/v1/chat/completions", headers=headers, json=body), "3 requests a minute")
