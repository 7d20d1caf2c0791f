"""The official `openai` package works against Strata's /v1 unchanged, with a Strata API key."""

import httpx
import numpy as np
import openai
import pytest

from app.core import ml
from app.openai_compat.service import CHAT_MODEL, EMBEDDING_MODEL
from tests.conftest import wait_until

QUESTION = "What is the capital of France? Answer in one sentence."


@pytest.fixture
def client(strata_api, make_api_key) -> openai.OpenAI:
    key, _ = make_api_key()
    return openai.OpenAI(base_url=strata_api, api_key=key, max_retries=0)


def test_models_are_listed(client):
    assert {model.id for model in client.models.list()} >= {CHAT_MODEL, EMBEDDING_MODEL}


def test_chat_completion_answers(client):
    completion = client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": QUESTION}])
    assert "Paris" in completion.choices[0].message.content
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"


def test_streamed_chat_completion_arrives_in_pieces(client):
    stream = client.chat.completions.create(
        model=CHAT_MODEL, messages=[{"role": "user", "content": QUESTION}], stream=True, max_tokens=40
    )
    pieces = [chunk.choices[0].delta.content for chunk in stream if chunk.choices[0].delta.content]
    assert len(pieces) > 3
    assert "Paris" in "".join(pieces)


def test_embeddings_equal_strata_own_embedder(client, builtin_models):
    """They are predictions of the registered embedder (its production version here)."""
    texts = ["The cat sits on the mat.", "Quarterly revenue grew by 12%."]
    response = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)  # the client asks for base64
    got = np.array([item.embedding for item in response.data], dtype=np.float32)
    expected = ml.embed(texts)
    assert got.shape == (2, 384)
    assert np.allclose(got, expected, atol=1e-5)
    as_floats = client.embeddings.create(model=EMBEDDING_MODEL, input=texts[0], encoding_format="float")
    assert np.allclose(as_floats.data[0].embedding, expected[0], atol=1e-5)
    assert response.usage.prompt_tokens > 0


def _refused(client: openai.OpenAI) -> bool:
    try:
        client.models.list()
    except openai.AuthenticationError:
        return True
    return False


def test_missing_or_revoked_key_is_refused_in_openai_error_shape(strata_api, make_api_key, db_session):
    from app.auth import service

    anonymous = httpx.get(f"{strata_api}/models")  # the openai client refuses to send no key at all
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    assert "Bearer" in anonymous.json()["error"]["message"]
    stranger = openai.OpenAI(base_url=strata_api, api_key="sk-strata-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        stranger.models.list()
    assert "unknown" in refused.value.body["message"]

    key, key_id = make_api_key("revoked@strata.test")
    revoked_client = openai.OpenAI(base_url=strata_api, api_key=key, max_retries=0)
    assert revoked_client.models.list().data
    service.revoke_api_key(db_session=db_session, actor=service.SYSTEM, key_id=key_id)
    db_session.commit()
    # The API process may trust a key it checked for a moment (app.auth.service's credential cache).
    wait_until(lambda: _refused(revoked_client), timeout=30, what="the revoked key to be refused")
    with pytest.raises(openai.AuthenticationError) as refused:
        revoked_client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}])
    assert "revoked" in refused.value.body["message"]


def test_unknown_model_and_bad_request_are_clear_openai_errors(client):
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert CHAT_MODEL in unknown.value.body["message"]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=CHAT_MODEL, messages=[])
    assert bad.value.body["param"] == "messages"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="hi")


async def test_chat_without_any_generator_is_a_clear_503(db, make_api_key, monkeypatch, tmp_path):
    from app.api import build_api
    from app.core.settings import get_settings

    key, _ = make_api_key()
    monkeypatch.setenv("STRATA_MODELS_DIR", str(tmp_path / "no-models"))
    monkeypatch.setenv("STRATA_LLM_BASE_URL", "")
    get_settings.cache_clear()
    try:
        transport = httpx.ASGITransport(app=build_api())
        async with httpx.AsyncClient(transport=transport, base_url="http://strata") as http:
            for stream in (False, True):
                response = await http.post(
                    "/v1/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
                )
                assert response.status_code == 503
                error = response.json()["error"]
                assert error["type"] == "service_unavailable"
                assert "strata models build" in error["message"] and "STRATA_LLM_BASE_URL" in error["message"]
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
