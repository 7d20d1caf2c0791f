"""A real HTTP receiver for webhook deliveries: it checks each POST's signature like a
receiver in production would, answers 200 to a good one and 401 to a bad one."""

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Received:
    timestamp: str
    signature: str
    body: bytes
    valid: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    secret: str = ""
    received: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver():
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers.get("X-Strata-Timestamp", "")
            signature = self.headers.get("X-Strata-Signature", "")
            expected = hmac.new(state.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
            valid = hmac.compare_digest(signature, f"sha256={expected}")
            state.received.append(Received(timestamp, signature, body, valid))
            self.send_response(200 if valid else 401)
            self.end_headers()
            self.wfile.write(b"ok" if valid else b"bad signature")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/strata"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
