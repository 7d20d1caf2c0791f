"""The HTTP edge (app/core/http.py) in front of the API and of Reflex's own routes, tested
on the web app as production composes it: `rx.App(api_transformer=build_api())` served by a
real server, with the compiled frontend mounted (a stand-in page: the real build is slow and
the browser tests cover it)."""

import base64
import hashlib
import os
import select
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, free_port, wait_until

PAGE_SCRIPT = b"window.__strataBoot = 1;"
PAGE = b"<!doctype html><html><head><script>%s</script>" % PAGE_SCRIPT + (
    b'<script type="module" src="/assets/entry.js"></script></head><body></body></html>'
)
PORTAL = "https://portal.example.com"
MB = 1024 * 1024
BOUNDARY = "strata-test-boundary"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
FILE_PART = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="big.txt"\r\n'
    "Content-Type: text/plain\r\n\r\n"
).encode()


class Web:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = root / "data"
        self.uploads = root / "uploads"

    def stored_files(self) -> list[Path]:
        return [
            p
            for top in (self.data_dir / "knowledge", self.data_dir / "cache" / "incoming", self.uploads)
            if top.exists()
            for p in top.rglob("*")
            if p.is_file()
        ]


@pytest.fixture(scope="module")
def web(tmp_path_factory, database_url, valkey_server, chroma_server):
    root = tmp_path_factory.mktemp("edge")
    client_dir = root / "web" / "build" / "client"
    (client_dir / "login").mkdir(parents=True)
    (client_dir / "index.html").write_bytes(PAGE)
    (client_dir / "login" / "index.html").write_bytes(PAGE)
    backend = root / "web" / "backend"
    backend.mkdir()
    # What a frontend build leaves for the backend: no page needs evaluating, and rx.upload
    # is used (so Reflex mounts /_upload).
    (backend / "stateful_pages.json").write_text("[]")
    (backend / "upload_is_used").touch()
    port = free_port()
    env = {
        **os.environ,
        "STRATA_DATA_DIR": str(root / "data"),
        "STRATA_DATABASE_URL": database_url,
        "STRATA_UPLOAD_MAX_MB": "1",
        "STRATA_UPLOAD_REQUEST_MAX_MB": "1",
        # /_upload takes the larger of the knowledge and dataset limits.
        "STRATA_DATASET_MAX_MB": "1",
        "STRATA_CORS_ORIGINS": PORTAL,
        "REFLEX_WEB_WORKDIR": str(root / "web"),
        "REFLEX_UPLOADED_FILES_DIR": str(root / "uploads"),
        "REFLEX_ENV_MODE": "prod",
        "REFLEX_TELEMETRY_ENABLED": "false",
        # What `reflex run --env prod` sets for its backend (Reflex's internal variables).
        "__REFLEX_SKIP_COMPILE": "true",
        "__REFLEX_MOUNT_FRONTEND_COMPILED_APP": "true",
    }
    log = root / "web.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "app.app:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        web = Web(root, port)
        wait_until(lambda: httpx.get(f"{web.url}/ping").status_code == 200, 120, "the web app", log=log)
        yield web
    finally:
        proc.terminate()
        proc.wait(30)


def post_chunked(web: Web, path: str, headers: dict[str, str], total: int, piece: int = 64 * 1024) -> tuple[int, int]:
    """POSTs a multipart body of one file (`total` bytes) in chunks, stopping when the server answers first.
    Returns the status and how many body bytes went out before the answer."""
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(head.encode() + b"\r\n")
    sock.sendall(b"%x\r\n%s\r\n" % (len(FILE_PART), FILE_PART))
    sent = len(FILE_PART)
    sock.settimeout(5)
    try:
        while sent < total and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"%x\r\n%s\r\n" % (piece, b"x" * piece))
            sent += piece
        if sent >= total:
            sock.sendall(b"0\r\n\r\n")
    except OSError:  # the server stopped reading (full buffers) or closed: its answer is waiting
        pass
    sock.settimeout(30)
    answer = sock.recv(65536)
    sock.close()
    return int(answer.split(b" ", 2)[1]), sent


def upload_handler() -> str:
    from app.knowledge.state import KnowledgeState

    return f"{KnowledgeState.get_full_name()}.upload"


def post_declaring(web: Web, path: str, headers: dict[str, str], declared: int, body: bytes) -> tuple[int, bytes]:
    """POSTs `body` under a Content-Length of `declared` bytes (an HTTP client would refuse to)."""
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=30)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\nContent-Length: {declared}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(head.encode() + b"\r\n" + body)
    answer = b""
    # The refusal closes the connection (Connection: close): read until it does, since head
    # and body may arrive in separate pieces.
    while piece := sock.recv(65536):
        answer += piece
    sock.close()
    return int(answer.split(b" ", 2)[1]), answer.partition(b"\r\n\r\n")[2]


def test_reflex_upload_endpoint_refuses_a_declared_oversized_body_at_once(web):
    headers = {
        "reflex-client-token": "a-token",
        "reflex-event-handler": upload_handler(),
        "Content-Type": MULTIPART,
    }
    # Answered although only a few bytes of the 10 GB ever arrive.
    status, body = post_declaring(web, "/_upload", headers, 10 * 1024 * MB, FILE_PART)
    assert status == 413 and b"nothing was stored" in body


def session_cookie(web: Web, make_user, role: str) -> str:
    email = f"{role}-{uuid.uuid4().hex[:6]}@x.io"
    make_user(email, role=role)
    login = httpx.post(f"{web.url}/api/v1/auth/login", json={"email": email, "password": "password-123"})
    return f"strata_session={login.json()['token']}"


def test_reflex_upload_endpoint_stops_reading_a_streamed_body_past_the_limit(web, make_user):
    headers = {
        "reflex-client-token": "a-token",
        "reflex-event-handler": upload_handler(),
        "Content-Type": MULTIPART,
        "Cookie": session_cookie(web, make_user, "staff"),
    }
    status, sent = post_chunked(web, "/_upload", headers, total=64 * MB)
    assert status == 413
    assert sent < 16 * MB, sent  # about the 1 MB limit plus what the sockets buffered
    assert web.stored_files() == []


@pytest.mark.parametrize("role", [None, "viewer"])
def test_reflex_upload_endpoint_refuses_anyone_but_staff_before_reading_the_body(web, make_user, role):
    """Reflex spools an upload to disk before its handler checks who is asking: without a
    staff session nothing of the body is read, let alone stored."""
    headers = {
        "reflex-client-token": "a-token",
        "reflex-event-handler": upload_handler(),
        "Content-Type": MULTIPART,
    }
    if role:
        headers["Cookie"] = session_cookie(web, make_user, role)
    status, sent = post_chunked(web, "/_upload", headers, total=64 * MB)
    assert status == 401
    assert sent < 16 * MB, sent
    assert web.stored_files() == []


def test_dataset_upload_route_refuses_an_oversized_body_before_reading_it(web, make_user):
    make_user("staff@x.io", role="staff")
    login = httpx.post(f"{web.url}/api/v1/auth/login", json={"email": "staff@x.io", "password": "password-123"})
    staff = {"Authorization": f"Bearer {login.json()['token']}"}
    status, sent = post_chunked(web, "/api/v1/datasets", {**staff, "Content-Type": MULTIPART}, 64 * MB)
    assert status == 413 and sent < 16 * MB, sent
    assert httpx.get(f"{web.url}/api/v1/datasets", headers=staff).json() == []


def test_knowledge_upload_route_refuses_an_oversized_body_before_reading_it(web, make_user):
    make_user("staff@x.io", role="staff")
    login = httpx.post(f"{web.url}/api/v1/auth/login", json={"email": "staff@x.io", "password": "password-123"})
    staff = {"Authorization": f"Bearer {login.json()['token']}"}
    knowledge_base = httpx.post(f"{web.url}/api/v1/knowledge", headers=staff, json={"name": "Handbook"}).json()
    path = f"/api/v1/knowledge/{knowledge_base['id']}/documents"
    status, sent = post_chunked(web, path, {**staff, "Content-Type": MULTIPART}, 64 * MB)
    assert status == 413 and sent < 16 * MB, sent
    # Before sign-in too: an anonymous body is refused just as early.
    status, sent = post_chunked(web, path, {"Content-Type": MULTIPART}, 64 * MB)
    assert status == 413 and sent < 16 * MB, sent
    assert httpx.get(f"{web.url}{path}", headers=staff).json() == []
    assert web.stored_files() == []


def test_pages_carry_a_content_security_policy_and_other_safety_headers(web):
    digest = base64.b64encode(hashlib.sha256(PAGE_SCRIPT).digest()).decode()
    for path in ("/", "/login"):
        response = httpx.get(f"{web.url}{path}", follow_redirects=True)
        assert response.status_code == 200 and response.content == PAGE, path
        csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
        assert csp["default-src"] == "'self'"
        # The page's own inline script may run; no other inline script can.
        assert f"'sha256-{digest}'" in csp["script-src"] and "'unsafe-inline'" not in csp["script-src"]
        assert csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
        assert csp["object-src"] == "'none'"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
    api = httpx.get(f"{web.url}/api/v1/health")
    assert api.headers["x-content-type-options"] == "nosniff"


def test_other_sites_get_no_cors_access_unless_configured(web):
    evil = httpx.get(f"{web.url}/api/v1/me", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    preflight = httpx.options(
        f"{web.url}/api/v1/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    portal = httpx.get(f"{web.url}/api/v1/me", headers={"Origin": PORTAL})
    assert portal.headers["access-control-allow-origin"] == PORTAL


def websocket_handshake(web: Web, origin: str) -> int:
    sock = socket.create_connection(("127.0.0.1", web.port), timeout=30)
    sock.sendall(
        (
            f"GET /_event/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
            "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n\r\n"
        ).encode()
    )
    status = int(sock.recv(4096).split(b" ", 2)[1])
    sock.close()
    return status


def test_the_state_websocket_accepts_only_the_apps_own_pages(web):
    assert websocket_handshake(web, f"http://127.0.0.1:{web.port}") == 101
    assert websocket_handshake(web, "https://evil.example") == 403
