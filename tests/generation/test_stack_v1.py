"""The OpenAI-compatible API through the real `strata run` (Reflex's backend mounts the API):
an admin creates a key, and the official client lists models and streams an answer."""

import httpx
import openai
import pytest

from app.openai_compat.service import CHAT_MODEL
from tests.stack import Stack

ADMIN_EMAIL = "v1-admin@strata.test"
ADMIN_PASSWORD = "v1-admin-password"


@pytest.mark.stack
@pytest.mark.timeout(900)
def test_openai_client_against_strata_run(tmp_path):
    with Stack(tmp_path, STRATA_ADMIN_EMAIL=ADMIN_EMAIL, STRATA_ADMIN_PASSWORD=ADMIN_PASSWORD) as stack:
        stack.wait(lambda: stack.get("/ping", timeout=5).status_code == 200, 600, "the web server")
        login = httpx.post(
            f"{stack.url}/api/v1/auth/login",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        )
        assert login.status_code == 200, login.text
        admin = {"Authorization": f"Bearer {login.json()['token']}"}
        me = httpx.get(f"{stack.url}/api/v1/me", headers=admin).json()
        key = httpx.post(f"{stack.url}/api/v1/keys", headers=admin, json={"user_id": me["id"], "name": "openai"})
        assert key.status_code == 201, key.text

        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=key.json()["key"], max_retries=0, timeout=120)
        assert CHAT_MODEL in {model.id for model in client.models.list()}
        stream = client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            stream=True,
            max_tokens=30,
        )
        assert "Paris" in "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        unknown = httpx.get(f"{stack.url}/v1/nothing-here", headers={"Authorization": f"Bearer {key.json()['key']}"})
        assert unknown.status_code == 404 and "error" in unknown.json()
