"""A second Strata API process (uvicorn serving app.api.build_api on a free port) for the
OpenAI-compatible API and the remote generator, and an API key to call it with."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_ROOT, free_port, wait_until

WARM_UP_QUESTION = "Say hello."


@pytest.fixture(scope="module")
def strata_api(database_url, valkey_server) -> Iterator[str]:
    """Base URL (…/v1) of a running Strata API process on the test database."""
    port = free_port()
    log = Path(TEST_ROOT) / f"generation-api-{port}.log"
    env = {
        **os.environ,
        "STRATA_DATABASE_URL": database_url,
        "STRATA_LLM_BASE_URL": "",  # the server itself answers with its built-in model
    }
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.api:build_api", "--factory", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/v1/models").status_code == 401,
            timeout=60,
            what="the Strata API process",
            log=log,
        )
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def make_api_key(db, make_user):
    """make_api_key(email) -> (plaintext key, key id) of a new viewer, created through app.auth.service."""
    from app.auth import service
    from app.core.db import session_scope

    def make(email: str = "caller@strata.test") -> tuple[str, int]:
        user = make_user(email, role="viewer")
        with session_scope() as db_session:
            key, plaintext = service.create_api_key(
                db_session=db_session, actor=service.SYSTEM, user_id=user.id, name="openai client"
            )
            return plaintext, key.id

    return make
