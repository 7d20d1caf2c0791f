"""Company sign-in routes (app/auth/oidc.py does the work). Every failure ends on the login page
with a code that the page turns into a message; none ends in an error page."""

from typing import Annotated
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from app.auth import oidc
from app.auth.api import take_sign_in_attempt
from app.auth.cookies import safe_next_path
from app.core.db import run_in_session
from app.core.errors import TooManyAttempts
from app.core.settings import Settings, get_settings

router = APIRouter(prefix=oidc.ROUTES_PREFIX, tags=["auth"])

TRANSACTION_COOKIE = "strata_oidc"
TRANSACTION_COOKIE_PATH = oidc.ROUTES_PREFIX


def _redirect_uri(request: Request, settings: Settings) -> str:
    return settings.oidc_redirect_url or str(request.url_for("oidc_callback"))


def _to_login(code: str, next_path: str, **extra: str) -> RedirectResponse:
    query = urlencode({"error": code, "next": next_path, **extra})
    response = RedirectResponse(f"/login?{query}", status_code=303)
    response.delete_cookie(TRANSACTION_COOKIE, path=TRANSACTION_COOKIE_PATH)
    return response


async def _throttled(request: Request, next_path: str) -> RedirectResponse | None:
    """Each leg costs calls to the provider, so each takes a sign-in attempt from the client's
    address (STRATA_LOGIN_ATTEMPTS_PER_MINUTE, shared with password sign-in)."""
    try:
        await take_sign_in_attempt(request)
    except TooManyAttempts as exc:
        return _to_login("throttled", next_path, retry=str(exc.retry_after_seconds))
    return None


@router.get("/login", include_in_schema=False)
async def oidc_login(
    request: Request,
    next: Annotated[str | None, Query(max_length=2000)] = None,  # noqa: A002 - the query parameter's name
) -> RedirectResponse:
    """Sends the browser to the company's provider; it comes back to /callback, then goes on to
    `next`, or else to the `next` of the login page the button was clicked on (its Referer: the
    page may have been reached by client-side navigation that no state saw)."""
    if next is None:
        next = parse_qs(urlsplit(request.headers.get("referer", "")).query).get("next", ["/"])[0][:2000]
    if refusal := await _throttled(request, safe_next_path(next)):
        return refusal
    settings = get_settings()
    try:
        url, sealed = await oidc.start_sign_in(
            settings=settings, redirect_uri=_redirect_uri(request, settings), next_path=next
        )
    except oidc.SignInFailed as failure:
        return _to_login(failure.code, failure.next_path)
    response = RedirectResponse(url, status_code=303)
    # SameSite=Lax, not Strict: the provider sends the browser back by a cross-site top-level
    # navigation, on which a Strict cookie would be withheld. Lax still withholds it from other
    # sites' forms, frames and scripts; the path keeps it off every other request.
    response.set_cookie(
        TRANSACTION_COOKIE,
        sealed,
        max_age=oidc.TRANSACTION_SECONDS,
        path=TRANSACTION_COOKIE_PATH,
        httponly=True,
        secure=settings.env == "prod",
        samesite="lax",
    )
    return response


@router.get("/callback", include_in_schema=False)
async def oidc_callback(request: Request) -> RedirectResponse:
    if refusal := await _throttled(request, "/"):
        return refusal
    settings = get_settings()
    identity = None
    try:
        identity, next_path = await oidc.finish_sign_in(
            settings=settings,
            redirect_uri=_redirect_uri(request, settings),
            sealed_transaction=request.cookies.get(TRANSACTION_COOKIE, ""),
            params=request.query_params,
        )
        response = RedirectResponse(next_path, status_code=303)
        await run_in_session(oidc.start_company_session, settings=settings, identity=identity, response=response)
    except oidc.SignInFailed as failure:
        await run_in_session(oidc.record_failed_sign_in, identity=identity, code=failure.code)
        return _to_login(failure.code, failure.next_path)
    response.delete_cookie(TRANSACTION_COOKIE, path=TRANSACTION_COOKIE_PATH)
    return response
