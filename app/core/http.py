"""The HTTP edge: plain ASGI middleware in front of every route of the web process.

`rx.App(api_transformer=<FastAPI app>)` mounts Reflex's own app (the `/_event` websocket,
`/_upload`, the compiled frontend) at "" inside the FastAPI app, so middleware added to
that FastAPI app sees every request the web process answers, not only the API's.

Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs
the app in a task group of its own and relays the body through memory streams, which
cost about a third of the event loop's time per predict request under load."""

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import HTTP_LATENCY, HTTP_REQUESTS
from app.core.settings import Settings, get_settings

log = structlog.get_logger("strata.http")

API_PREFIXES = ("/api/", "/metrics", "/v1/")

# A client's id is echoed into every log line and back in a header: only short, plain ones.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_of(scope: Scope) -> str:
    """The caller's X-Request-ID if it is a sane one, else a new id."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _REQUEST_ID.fullmatch(candidate) else uuid.uuid4().hex
    return uuid.uuid4().hex


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


class ObserveRequests:
    """Request id, metrics and one log line per API request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            log.exception("request.failed", method=scope["method"], path=scope["path"])
            if response_started:  # too late for an error response: the client sees the connection drop
                raise
            await JSONResponse({"detail": "Internal server error", "request_id": request_id}, status_code=500)(
                scope, receive, send_with_request_id
            )
        elapsed = time.perf_counter() - started
        route = getattr(scope.get("route"), "path", "unmatched")
        HTTP_REQUESTS.labels(scope["method"], route, str(status)).inc()
        HTTP_LATENCY.labels(scope["method"], route).observe(elapsed)
        log.info(
            "request",
            method=scope["method"],
            path=scope["path"],
            status=status,
            ms=round(elapsed * 1000, 1),
            user_id=scope.get("state", {}).get("user_id"),
        )


# ------------------------------------------------------------------- body limits


@dataclass(frozen=True)
class BodyLimit:
    """Routes (a regular expression over the whole path) that take bodies up to `max_bytes(settings)`."""

    path: str
    max_bytes: Callable[[Settings], int]


class LimitRequestBodies:
    """Refuses a request body over its route's limit with 413 as soon as the declared
    Content-Length or the bytes received so far pass it, before any route reads the body
    (and so before sign-in is checked: routes read bodies first). The first matching
    BodyLimit applies; any other route gets `default(settings)`."""

    def __init__(self, app: ASGIApp, *, limits: Sequence[BodyLimit], default: Callable[[Settings], int]) -> None:
        self.app = app
        self.limits = [(re.compile(limit.path), limit.max_bytes) for limit in limits]
        self.default = default

    def limit_for(self, path: str) -> int:
        settings = get_settings()
        for pattern, max_bytes in self.limits:
            if pattern.fullmatch(path):
                return max_bytes(settings)
        return self.default(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                await _refuse(scope, receive, send, 400, "Content-Length must be a number of bytes.")
                return
            if int(declared) > limit:
                await _refuse(scope, receive, send, 413, _too_large(limit))
                return

        received = 0
        response_started = False
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not response_started:
                        await _refuse(scope, receive, send, 413, _too_large(limit))
                    # The route sees the client go away and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused and not response_started:
                return  # the 413 went out instead
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise
            # What a route raises on the disconnect we fed it is no error of the request's.


class SignedInBeforeBody:
    """Routes that read the whole body before their handler checks who is asking (Reflex's
    /_upload spools every file to disk first) are refused with 401 up front unless the
    request's cookies hold a session that `allowed` accepts, so that nobody signed out (or
    under the role) can make the server store a body at all."""

    def __init__(self, app: ASGIApp, *, paths: Sequence[str], allowed: Callable[[str], Awaitable[bool]]) -> None:
        self.app = app
        self.paths = tuple(paths)
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            if not await self.allowed(_header(scope, b"cookie") or ""):
                await _refuse(scope, receive, send, 401, "Sign in with a role that may upload files.")
                return
        await self.app(scope, receive, send)


def _too_large(limit: int) -> str:
    if limit >= 1024 * 1024:
        size = f"{limit / (1024 * 1024):g} MB"
    else:
        size = f"{limit / 1024:g} KB"
    return f"The request body is larger than this route accepts ({size}); nothing was stored."


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    # Connection: close, so the server drops the rest of the body instead of reading it.
    await JSONResponse({"detail": detail}, status_code=status, headers={"Connection": "close"})(scope, receive, send)


# ------------------------------------------------------------------ origins, headers


def same_origin(scope: Scope, origin: str) -> bool:
    """Whether a browser's Origin names the host this request was sent to (directly or
    through a proxy that sets X-Forwarded-Host). The scheme is not compared: a proxy that
    terminates TLS forwards https pages to this plain-HTTP port."""
    origin_host = urlsplit(origin).netloc.lower()
    hosts = [_header(scope, b"host"), (_header(scope, b"x-forwarded-host") or "").split(",")[0].strip()]
    return bool(origin_host) and origin_host in {host.lower() for host in hosts if host}


class SameOriginWebSockets:
    """Refuses websocket handshakes a browser opens from another site's page.

    Browsers apply no CORS to websockets, and Reflex's socket (`/_event`) acts with the
    session of whoever's browser opens it: without this check any page on the internet
    could drive a signed-in user's UI state (cross-site websocket hijacking). Clients that
    send no Origin are not browsers and carry no ambient credentials."""

    def __init__(self, app: ASGIApp, *, extra_origins: Callable[[Settings], Sequence[str]]) -> None:
        self.app = app
        self.extra_origins = extra_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            origin = _header(scope, b"origin")
            if origin and not same_origin(scope, origin) and origin not in self.extra_origins(get_settings()):
                log.warning("websocket.refused", origin=origin[:200], path=scope["path"])
                await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)


_INLINE_SCRIPT = re.compile(rb"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)


def inline_script_hashes(frontend_dir: Path) -> list[str]:
    """CSP source expressions ('sha256-...') of every inline script in the exported pages."""
    hashes = set()
    for page in sorted(frontend_dir.rglob("*.html")):
        for script in _INLINE_SCRIPT.findall(page.read_bytes()):
            if script.strip():
                hashes.add("'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'")
    return sorted(hashes)


def page_csp(script_hashes: Sequence[str]) -> str:
    """The Content-Security-Policy of Strata's own pages.

    - scripts: the bundle's files, the exported pages' own inline scripts by hash, and
      'unsafe-eval', because Reflex runs what a backend event handler returns on the
      client with eval() (every toast shown from a handler, `rx.call_script`). An
      injected <script> or inline event handler still does not run.
    - styles: 'unsafe-inline', since Radix and Emotion set style attributes and inject
      <style> elements at runtime.
    - connect-src 'self' covers the same-origin websocket (ws:/wss:) as well.
    """
    return "; ".join(
        (
            "default-src 'self'",
            " ".join(("script-src 'self' 'unsafe-eval'", *script_hashes)),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeaders:
    """nosniff and a Referrer-Policy on every response; on the app's own pages (everything
    outside the API) also a Content-Security-Policy and X-Frame-Options. A header a route
    set itself (the sandboxing CSP of served uploads, say) is left as it is."""

    COMMON = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"))

    def __init__(self, app: ASGIApp, *, frontend_dir: Callable[[], Path | None]) -> None:
        self.app = app
        self.frontend_dir = frontend_dir
        self._csp: tuple[tuple[Path, float], bytes] | None = None

    def _page_headers(self) -> tuple[tuple[bytes, bytes], ...]:
        return (
            (b"content-security-policy", self._page_csp()),
            (b"x-frame-options", b"DENY"),
        )

    def _page_csp(self) -> bytes:
        """Hashes of the exported pages, read again only when a new build replaced index.html."""
        directory = self.frontend_dir()
        index = directory / "index.html" if directory else None
        stamp = (index, index.stat().st_mtime) if index and index.exists() else None
        if stamp is None:
            return page_csp(()).encode()
        if self._csp is None or self._csp[0] != stamp:
            self._csp = (stamp, page_csp(inline_script_hashes(directory)).encode())
        return self._csp[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self.COMMON if scope["path"].startswith(API_PREFIXES) else self.COMMON + self._page_headers()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
