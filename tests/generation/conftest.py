"""A second Strata API process (uvicorn serving app.api.build_api on a free port) for the
OpenAI-compatible API and the remote generator, and an API key to call it with; a fake
language model server whose answers the test controls; a client that can leave mid-stream."""

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_ROOT, free_port, wait_until
from tests.predict.conftest import builtin_models  # noqa: F401 - /v1/embeddings serves the registered embedder

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


class FakeLLM:
    """An OpenAI-compatible chat server on a real socket, standing in for STRATA_LLM_BASE_URL
    (vLLM, Ollama...): it streams `pieces` and records each request. mode "hold" waits after
    the first piece until `release` is set; mode "break" drops the connection mid-stream."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.pieces = ["The warehouse ", "opens ", "at 7:30 ", "[1]."]
        self.mode = "answer"
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeLLMHandler)
        self.server.fake = self
        self.server.handle_error = lambda *_: None  # a client that left mid-stream is expected here
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def waiting(self, count: int) -> bool:
        """True once `count` requests have reached the server."""
        return len(self.requests) >= count


class _FakeLLMHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args) -> None:
        pass

    def _chunk(self, data: str) -> None:
        payload = f"data: {data}\n\n".encode()
        self.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:
        fake: FakeLLM = self.server.fake
        fake.requests.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for number, piece in enumerate(fake.pieces):
            self._chunk(json.dumps({"choices": [{"delta": {"content": piece}}]}))
            if number == 0 and fake.mode == "hold":
                fake.release.wait(120)
            if number == 0 and fake.mode == "break":
                self.wfile.write(b"40\r\ndata: {")  # a chunk cut short, then the connection drops
                self.close_connection = True
                return
        self._chunk("[DONE]")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def fake_llm(monkeypatch) -> Iterator[FakeLLM]:
    """A FakeLLM as the configured language model server, for one test."""
    from app.core.settings import get_settings

    fake = FakeLLM()
    fake.thread.start()
    monkeypatch.setenv("STRATA_LLM_BASE_URL", fake.url)
    monkeypatch.setenv("STRATA_LLM_MODEL", "fake-model")
    get_settings.cache_clear()
    yield fake
    fake.release.set()
    fake.server.shutdown()
    fake.server.server_close()
    monkeypatch.undo()
    get_settings.cache_clear()


class AsgiStream:
    """One request to an ASGI app, its response read as it is sent, and a client that can leave
    (the `http.disconnect` a server passes on when the browser or client closes the connection)."""

    def __init__(self, app, path: str, *, headers: dict[str, str], body: dict) -> None:
        self._body = json.dumps(body).encode()
        self._body_sent = False
        self._left = asyncio.Event()
        self._messages: asyncio.Queue = asyncio.Queue()
        all_headers = {
            **headers,
            "host": "strata",
            "content-type": "application/json",
            "content-length": str(len(self._body)),
        }
        scope = {
            "type": "http",
            # As uvicorn and granian announce it: Starlette then watches for the disconnect.
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(name.lower().encode(), value.encode()) for name, value in all_headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("strata", 80),
        }
        self.task = asyncio.create_task(app(scope, self._receive, self._send))
        self.status = 0
        self.headers: dict[str, str] = {}

    async def _receive(self) -> dict:
        if not self._body_sent:
            self._body_sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self._left.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict) -> None:
        await self._messages.put(message)

    async def start(self) -> "AsgiStream":
        """Waits for the status and headers."""
        message = await asyncio.wait_for(self._messages.get(), 120)
        self.status = message["status"]
        self.headers = {name.decode(): value.decode() for name, value in message["headers"]}
        return self

    async def read_until(self, text: str = "") -> str:
        """The body as it arrives, until it holds `text` (or, with no text, until it ends)."""
        received = ""
        while not text or text not in received:
            message = await asyncio.wait_for(self._messages.get(), 120)
            received += message.get("body", b"").decode()
            if not message.get("more_body", False):
                assert not text or text in received, f"the response ended before {text!r}: {received!r}"
                break
        return received

    async def leave(self) -> None:
        """The client closes the connection; returns once the app has finished with the request."""
        self._left.set()
        await asyncio.wait_for(self.task, 120)


async def eventually(check, what: str, timeout: float = 30.0):
    """Awaits check() until it returns something truthy (work finishing in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
