"""The FastAPI app that Reflex's backend mounts: /api/v1, /api/docs and /metrics, and the
HTTP edge (app/core/http.py) in front of them and of Reflex's own routes."""

import hmac
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

import app.job_kinds  # noqa: F401 - the jobs API validates kinds against the registry
import jobs.metrics  # noqa: F401 - registers the jobs and queue depth gauges with /metrics
from app.alerts.api import router as alerts_router
from app.ask.api import router as ask_router
from app.audit.api import router as audit_router
from app.auth.api import router as auth_router
from app.auth.client_address import RememberClientAddress
from app.auth.cookies import session_token_from_cookie_header
from app.auth.deps import bearer_credential, current_user, minimum_role, user_for_credential
from app.auth.oidc_api import router as oidc_router
from app.backup.api import router as backup_router
from app.batch.api import router as batch_router
from app.core.errors import StrataError, TooManyAttempts, Unauthorized
from app.core.http import (
    BodyLimit,
    LimitRequestBodies,
    ObserveRequests,
    SameOriginWebSockets,
    SecurityHeaders,
    SignedInBeforeBody,
)
from app.core.metrics import render_metrics
from app.core.roles import Role, has_role, require_role
from app.core.settings import Settings, get_settings
from app.datasets.api import router as datasets_router
from app.jobs_board.api import router as jobs_router
from app.knowledge.api import router as knowledge_router
from app.monitoring.api import router as monitoring_router
from app.monitoring.drift_api import router as drift_router
from app.openai_compat.api import build_openai_api
from app.predict.api import router as predict_router
from app.schedules.api import router as schedules_router
from app.system.api import router as system_router
from app.training.api import router as training_router
from app.usage.api import router as usage_router
from app.webhooks.api import router as webhooks_router

MB = 1024 * 1024
# Multipart framing (boundaries, part headers, the small fields beside the files).
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def upload_body_bytes(settings: Settings) -> int:
    return int(max(settings.upload_request_max_mb, settings.upload_max_mb) * MB) + MULTIPART_OVERHEAD_BYTES


def dataset_body_bytes(settings: Settings) -> int:
    return int(settings.dataset_max_mb * MB) + MULTIPART_OVERHEAD_BYTES


def page_upload_body_bytes(settings: Settings) -> int:
    return max(upload_body_bytes(settings), dataset_body_bytes(settings))


# Routes that take more than a JSON body, each with its limit; every other route gets
# STRATA_REQUEST_MAX_KB. A route for large uploads (datasets, say) adds its line here.
BODY_LIMITS = (
    BodyLimit(r"/api/v1/knowledge/\d+/documents", upload_body_bytes),
    BodyLimit(r"/api/v1/datasets", dataset_body_bytes),
    # Reflex's upload endpoint (rx.upload on the Knowledge and Datasets pages): it parses the
    # whole multipart body to temporary files before the event handler checks who is asking.
    BodyLimit(r"/_upload", page_upload_body_bytes),
)


async def may_upload_from_a_page(cookie_header: str) -> bool:
    """Whether a page's upload (Reflex's /_upload) comes from a signed-in staff member: both
    upload pages (Knowledge, Datasets) are for staff, and their handlers check again."""
    token = session_token_from_cookie_header(cookie_header)
    if not token:
        return False
    try:
        user = await user_for_credential(token)
    except Unauthorized:
        return False
    return has_role(user, Role.staff)


def json_body_bytes(settings: Settings) -> int:
    return settings.request_max_kb * 1024


def frontend_dir() -> Path:
    """Where the web program serves the exported frontend from (Reflex's build output)."""
    from reflex.utils.prerequisites import get_web_dir
    from reflex_base.constants import Dirs

    return get_web_dir() / Dirs.STATIC


async def metrics_reader(request: Request) -> None:
    """Anyone while metrics are public; else a Prometheus scraper with STRATA_METRICS_TOKEN, or an admin."""
    settings = get_settings()
    if settings.metrics_are_public:
        return
    if settings.metrics_token and hmac.compare_digest(
        bearer_credential(request).encode(), settings.metrics_token.encode()
    ):
        return
    require_role(await current_user(request), Role.admin)


async def docs_reader(request: Request) -> None:
    if not get_settings().api_docs_are_public:
        require_role(await current_user(request), Role.admin)


def _publish_minimum_roles(router: APIRouter) -> None:
    for route in router.routes:
        if isinstance(route, APIRoute):
            route.openapi_extra = {
                **(route.openapi_extra or {}),
                "x-strata-minimum-role": minimum_role(route.dependant),
            }


class ErrorOut(BaseModel):
    """Every error of /api/v1: what went wrong, in words a user can act on."""

    detail: str


# Documented on every route, so that clients (and schema checks) know the error shape;
# it also replaces FastAPI's default 422 schema, which our handler does not use.
ERROR_RESPONSES: dict[int | str, dict] = {
    "4XX": {"model": ErrorOut, "description": "The request cannot be served: `detail` says why"},
    "5XX": {"model": ErrorOut, "description": "A server-side failure or an unavailable dependency"},
}


def build_api() -> FastAPI:
    # Docs served by the routes below, behind docs_reader, rather than FastAPI's open ones.
    api = FastAPI(
        title="Strata API",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=ERROR_RESPONSES,
    )
    for router in (
        alerts_router,
        ask_router,
        audit_router,
        auth_router,
        backup_router,
        oidc_router,
        batch_router,
        datasets_router,
        jobs_router,
        knowledge_router,
        monitoring_router,
        drift_router,
        predict_router,
        schedules_router,
        system_router,
        training_router,
        usage_router,
        webhooks_router,
    ):
        _publish_minimum_roles(router)
        api.include_router(router)

    # OpenAI-compatible API, a sub-application with OpenAI's error shape.
    api.mount("/v1", build_openai_api())

    @api.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_reader)])
    def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    @api.get("/api/openapi.json", include_in_schema=False, dependencies=[Depends(docs_reader)])
    def openapi() -> JSONResponse:
        return JSONResponse(api.openapi())

    @api.get("/api/docs", include_in_schema=False, dependencies=[Depends(docs_reader)])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/api/openapi.json", title="Strata API")

    # Innermost first. Reflex wraps its own routes (/_event, /_upload, the frontend) inside
    # this app, so each of these sees them too; Reflex adds its CORS middleware outside.
    api.add_middleware(SignedInBeforeBody, paths=("/_upload",), allowed=may_upload_from_a_page)
    api.add_middleware(LimitRequestBodies, limits=BODY_LIMITS, default=json_body_bytes)
    api.add_middleware(SameOriginWebSockets, extra_origins=lambda settings: settings.cors_origin_list)
    api.add_middleware(RememberClientAddress)
    api.add_middleware(ObserveRequests)
    api.add_middleware(SecurityHeaders, frontend_dir=frontend_dir)

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

    # A number past what the database stores (an id of 10**30) is the client's mistake, whichever
    # route and database it reaches: SQLite's driver raises OverflowError, PostgreSQL's a DataError.
    @api.exception_handler(OverflowError)
    @api.exception_handler(DataError)
    async def out_of_range(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "Invalid request: a number in it is out of range."}, status_code=422)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    # Last, so it only catches what no route above matched: API clients get JSON, not a page.
    @api.api_route("/api/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown_route(path: str) -> JSONResponse:
        return JSONResponse({"detail": f"No API route /api/{path}."}, status_code=404)

    return api
