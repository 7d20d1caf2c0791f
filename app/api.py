"""The FastAPI app that Reflex's backend mounts: /api/v1, /api/docs and /metrics."""

import time
import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app.job_kinds  # noqa: F401 - the jobs API validates kinds against the registry
import jobs.metrics  # noqa: F401 - registers the jobs gauge with /metrics
from app.ask.api import router as ask_router
from app.auth.api import router as auth_router
from app.core.errors import StrataError, TooManyAttempts
from app.core.metrics import HTTP_LATENCY, HTTP_REQUESTS, render_metrics
from app.generation.openai_api import build_openai_api
from app.jobs_board.api import router as jobs_router
from app.knowledge.api import router as knowledge_router
from app.predict.api import router as predict_router
from app.system.api import router as system_router

log = structlog.get_logger("strata.api")

API_PREFIXES = ("/api/", "/metrics", "/v1/")


class ObserveRequests:
    """Request id, metrics and one log line per API request.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's BaseHTTPMiddleware runs
    the app in a task group of its own and relays the body through memory streams, which
    cost about a third of the event loop's time per predict request under load."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1") or uuid.uuid4().hex
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


def build_api() -> FastAPI:
    api = FastAPI(
        title="Strata API",
        version="1",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    for router in (ask_router, auth_router, jobs_router, knowledge_router, predict_router, system_router):
        api.include_router(router)

    # OpenAI-compatible API, a sub-application with OpenAI's error shape.
    api.mount("/v1", build_openai_api())

    @api.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    api.add_middleware(ObserveRequests)

    @api.exception_handler(StrataError)
    async def strata_error(_request: Request, exc: StrataError) -> JSONResponse:
        headers = {}
        if isinstance(exc, TooManyAttempts):
            headers["Retry-After"] = str(exc.retry_after_seconds)
        if exc.status_code == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'] if part != 'body')}: {error['msg']}"
            for error in exc.errors()
        ]
        return JSONResponse({"detail": "Invalid request: " + "; ".join(problems)}, status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    # Last, so it only catches what no route above matched: API clients get JSON, not a page.
    @api.api_route("/api/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown_route(path: str) -> JSONResponse:
        return JSONResponse({"detail": f"No API route /api/{path}."}, status_code=404)

    return api
