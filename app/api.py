"""The FastAPI app that Reflex's backend mounts: /api/v1, /api/docs and /metrics."""

import time
import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

import app.job_kinds  # noqa: F401 - the jobs API validates kinds against the registry
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


def _route_label(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unmatched")


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

    @api.middleware("http")
    async def observe(request: Request, call_next):
        if not request.url.path.startswith(API_PREFIXES):
            return await call_next(request)
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:
            log.exception("request.failed", method=request.method, path=request.url.path)
            response = JSONResponse({"detail": "Internal server error", "request_id": request_id}, status_code=500)
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        HTTP_REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, route).observe(elapsed)
        response.headers["x-request-id"] = request_id
        log.info(
            "request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            ms=round(elapsed * 1000, 1),
            user_id=getattr(request.state, "user_id", None),
        )
        return response

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
